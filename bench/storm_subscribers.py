#!/usr/bin/env python3
"""N SSE subscribers of one stream, resuming with Last-Event-ID and honouring retry: (the storm
part of ``bench/run.py`` starts a few of these). The token comes from STORM_TOKEN, never argv.

    STORM_TOKEN=... python bench/storm_subscribers.py --urls A[,B] --n 1250 --seconds 180 --out F
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gatewaybench.storm.worker import main

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--urls", required=True, help="comma list: the first stream, then reconnects")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True, help="each subscriber's deadline")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    urls = args.urls.split(",")
    sys.exit(main(urls, args.n, os.environ["STORM_TOKEN"], args.seconds, args.out))

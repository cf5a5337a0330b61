"""Who is calling: API tokens and stream tickets."""

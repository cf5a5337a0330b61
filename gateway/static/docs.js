// The gateway's API docs page (GET /api/v1/docs): plain JavaScript, no build step, no
// dependencies. It renders the OpenAPI document the page embeds as data, in
// <script type="application/json" id="openapi">, into <main id="root">.

"use strict";
const doc = JSON.parse(document.getElementById("openapi").textContent);
const root = document.getElementById("root");
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Inline markdown: `code` spans only; everything else stays text.
function inline(text) {
  const out = [];
  String(text).split(/(`[^`]+`)/).forEach((part) => {
    if (part.startsWith("`") && part.endsWith("`") && part.length > 1) {
      out.push(el("code", {}, part.slice(1, -1)));
    } else if (part) {
      out.push(part);
    }
  });
  return out;
}

// Block markdown: paragraphs, ``` fences and "* " lists.
function prose(text) {
  const box = el("div", {class: "prose"});
  if (!text) return box;
  const blocks = String(text).split(/```/);
  blocks.forEach((block, index) => {
    if (index % 2 === 1) {
      box.append(el("pre", {}, el("code", {}, block.replace(/^\n/, ""))));
      return;
    }
    block.split(/\n\s*\n/).forEach((para) => {
      const lines = para.trim().split("\n");
      if (!lines[0]) return;
      if (lines.every((line) => /^\* /.test(line) || /^\s/.test(line))) {
        const list = el("ul", {});
        lines.join("\n").split(/\n(?=\* )/).forEach((item) => {
          list.append(el("li", {}, inline(item.replace(/^\* /, "").replace(/\s*\n\s*/g, " "))));
        });
        box.append(list);
      } else {
        box.append(el("p", {}, inline(lines.join(" "))));
      }
    });
  });
  return box;
}

function header(...names) {
  return el("tr", {}, names.map((name) => el("th", {}, name)));
}

function mark() {
  return el("span", {class: "req"}, "required");
}

function resolve(ref) {
  let node = doc;
  for (const part of ref.replace(/^#\//, "").split("/")) {
    node = node && node[part.replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  return node || {};
}

function refName(ref) {
  return ref.split("/").pop();
}

function deref(obj) {
  return obj && obj.$ref ? resolve(obj.$ref) : obj;
}

function typeLabel(schema) {
  if (schema === true || !schema || Object.keys(schema).length === 0) return ["any"];
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return [el("a", {href: "#schema-" + name}, name)];
  }
  if ("const" in schema) return ["= " + JSON.stringify(schema.const)];
  const alternatives = schema.anyOf || schema.oneOf;
  if (alternatives) {
    const parts = [];
    alternatives.forEach((alt, i) => { if (i) parts.push(" | "); parts.push(...typeLabel(alt)); });
    return parts;
  }
  if (schema.enum) return [schema.enum.map((v) => JSON.stringify(v)).join(" | ")];
  const types = [].concat(schema.type || (schema.properties ? "object" : "any"));
  const parts = [];
  types.forEach((type, i) => {
    if (i) parts.push(" | ");
    if (type === "array") {
      parts.push("array of ", ...typeLabel(schema.items));
    } else if (type === "string" && schema.format) {
      parts.push("string (" + schema.format + ")");
    } else {
      parts.push(type);
    }
  });
  return parts;
}

function constraints(schema) {
  if (!schema || schema.$ref) return [];
  const notes = [];
  const say = (label, key) => {
    if (key in schema) notes.push(label + " " + JSON.stringify(schema[key]));
  };
  say("min", "minimum"); say("max", "maximum");
  say("min length", "minLength"); say("max length", "maxLength");
  say("pattern", "pattern"); say("default", "default");
  if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
    const values = typeLabel(schema.additionalProperties).map((p) => p.textContent || p);
    notes.push("values: " + values.join(""));
  }
  return notes;
}

function describe(schema, lead) {
  const cell = el("td", {});
  if (lead) cell.append(...inline(lead), " ");
  const plain = deref(schema) || {};
  const text = schema.description || plain.description;
  if (text) cell.append(...inline(text));
  const notes = constraints(schema);
  if (notes.length) cell.append(el("div", {class: "muted"}, notes.join("; ")));
  return cell;
}

// A schema as a property table; references expand one level, in a closed <details>.
function schemaView(schema, depth, seen) {
  const box = el("div", {class: "schema"});
  if (schema && schema.$ref) {
    const name = refName(schema.$ref);
    const target = resolve(schema.$ref);
    box.append(el("div", {class: "type"}, typeLabel(schema)));
    if (depth < 3 && !seen.has(name) && hasShape(target)) {
      const more = el("details", {class: "ref"}, el("summary", {}, "show " + name));
      const inner = schemaView(target, depth + 1, new Set([...seen, name]));
      more.append(el("div", {class: "nested"}, inner));
      box.append(more);
    }
    return box;
  }
  if (schema && schema.description && depth === 0) box.append(prose(schema.description));
  if (schema && schema.properties) {
    const required = new Set(schema.required || []);
    const table = el("table", {}, header("field", "type", ""));
    for (const [name, prop] of Object.entries(schema.properties)) {
      const nameCell = el("td", {class: "name"}, name, required.has(name) ? mark() : null);
      const typeCell = el("td", {class: "type"}, typeLabel(prop));
      const row = el("tr", {}, nameCell, typeCell, describe(prop));
      table.append(row);
      const inner = prop.$ref ? prop : (prop.items && prop.items.$ref ? prop.items : null);
      if (inner && depth < 2 && !seen.has(refName(inner.$ref)) && hasShape(resolve(inner.$ref))) {
        const name2 = refName(inner.$ref);
        const more = el("details", {class: "ref"}, el("summary", {}, "show " + name2));
        const view = schemaView(resolve(inner.$ref), depth + 1, new Set([...seen, name2]));
        more.append(el("div", {class: "nested"}, view));
        table.append(el("tr", {}, el("td", {}), el("td", {colspan: "2"}, more)));
      } else if (!prop.$ref && prop.properties && depth < 3) {
        const view = el("div", {class: "nested"}, schemaView(prop, depth + 1, seen));
        table.append(el("tr", {}, el("td", {}), el("td", {colspan: "2"}, view)));
      }
    }
    box.append(table);
    if (schema.additionalProperties === false) {
      box.append(el("div", {class: "muted"}, "no other fields"));
    }
  } else if (schema) {
    box.append(el("div", {class: "type"}, typeLabel(schema)));
    const notes = constraints(schema);
    if (notes.length) box.append(el("div", {class: "muted"}, notes.join("; ")));
    if (schema.items && schema.items.$ref && depth < 3) {
      box.append(schemaView(schema.items, depth + 1, seen));
    }
  }
  return box;
}

function hasShape(schema) {
  return Boolean(schema && (schema.properties || schema.items || schema.enum));
}

function content(map) {
  const box = el("div", {});
  for (const [media, entry] of Object.entries(map || {})) {
    box.append(el("div", {class: "muted"}, el("code", {}, media)));
    if (entry.schema) box.append(schemaView(entry.schema, 0, new Set()));
  }
  return box;
}

function parametersView(list) {
  const table = el("table", {}, header("name", "in", "type", ""));
  for (const raw of list) {
    const p = deref(raw);
    table.append(el("tr", {},
      el("td", {class: "name"}, p.name, p.required ? el("span", {class: "req"}, "required") : null),
      el("td", {}, p.in),
      el("td", {class: "type"}, typeLabel(p.schema || {})),
      describe(p.schema || {}, p.description)));
  }
  return table;
}

function securityView(requirements) {
  if (!requirements.length || requirements.every((r) => Object.keys(r).length === 0)) {
    return el("p", {}, "Public: no credential needed.");
  }
  const names = requirements.map((r) => Object.keys(r).join(" + ") || "none");
  const p = el("p", {}, "Any one of: ");
  names.forEach((name, i) => {
    if (i) p.append(", ");
    p.append(name === "none" ? "no credential" : el("a", {href: "#security-" + name}, name));
  });
  return p;
}

function responsesView(responses) {
  const table = el("table", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "")));
  for (const [status, raw] of Object.entries(responses)) {
    const r = deref(raw);
    const cell = el("td", {}, prose(r.description));
    if (r.headers) {
      for (const [name, h] of Object.entries(r.headers)) {
        const text = inline(deref(h).description || "");
        cell.append(el("div", {}, "Header ", el("code", {}, name), ": ", ...text));
      }
    }
    if (r.content) cell.append(content(r.content));
    table.append(el("tr", {}, el("td", {class: "status s" + status[0]}, status), cell));
  }
  return table;
}

function operations() {
  const ops = [];
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      if (item[method]) ops.push({path, method, op: item[method], shared: item.parameters || []});
    }
  }
  return ops;
}

function opId(entry) {
  return "op-" + (entry.op.operationId || entry.method + entry.path.replace(/[^A-Za-z0-9]+/g, "-"));
}

function render() {
  const info = doc.info || {};
  root.append(el("h1", {}, info.title || "API"));
  root.append(el("p", {class: "muted"}, "OpenAPI " + doc.openapi + " · version " + info.version,
    " · ", el("a", {href: "openapi.json"}, "openapi.json")));
  if (info.summary) root.append(el("p", {}, info.summary));
  root.append(prose(info.description));

  const ops = operations();
  const tags = (doc.tags || []).map((t) => t.name);
  ops.forEach((o) => (o.op.tags || ["other"]).forEach((t) => {
    if (!tags.includes(t)) tags.push(t);
  }));

  root.append(el("h2", {}, "Operations"));
  const toc = el("ul", {class: "toc"});
  ops.forEach((o) => toc.append(el("li", {},
    el("a", {href: "#" + opId(o)}, el("code", {}, o.method.toUpperCase() + " " + o.path)), " ",
    el("span", {class: "muted"}, o.op.summary || ""))));
  root.append(toc);

  for (const tag of tags) {
    const group = ops.filter((o) => (o.op.tags || ["other"]).includes(tag));
    if (!group.length) continue;
    const meta = (doc.tags || []).find((t) => t.name === tag);
    root.append(el("h2", {id: "tag-" + tag}, tag));
    if (meta && meta.description) {
      root.append(el("p", {class: "muted"}, ...inline(meta.description)));
    }
    for (const o of group) {
      const body = el("div", {class: "body"});
      if (o.op.description) body.append(prose(o.op.description));
      const security = o.op.security || doc.security || [];
      body.append(el("h3", {}, "Authentication"), securityView(security));
      const params = [...o.shared, ...(o.op.parameters || [])];
      if (params.length) body.append(el("h3", {}, "Parameters"), parametersView(params));
      if (o.op.requestBody) {
        const rb = deref(o.op.requestBody);
        body.append(el("h3", {}, "Request body", rb.required ? mark() : null));
        if (rb.description) body.append(prose(rb.description));
        body.append(content(rb.content));
      }
      body.append(el("h3", {}, "Responses"), responsesView(o.op.responses || {}));
      root.append(el("details", {class: "op", id: opId(o)},
        el("summary", {},
          el("span", {class: "method " + o.method}, o.method),
          el("span", {class: "path"}, o.path),
          el("span", {}, o.op.summary || ""),
          el("span", {class: "tag"}, o.op.operationId || "")),
        body));
    }
  }

  const components = doc.components || {};
  root.append(el("h2", {id: "security"}, "Credentials"));
  const schemes = el("table", {}, header("name", "kind", ""));
  for (const [name, s] of Object.entries(components.securitySchemes || {})) {
    const format = s.bearerFormat ? " (" + s.bearerFormat + ")" : "";
    const kind = s.type === "http" ? "HTTP " + s.scheme + format
      : s.type === "apiKey" ? s.in + " " + s.name : s.type;
    schemes.append(el("tr", {id: "security-" + name},
      el("td", {class: "name"}, name), el("td", {}, kind),
      el("td", {}, inline(s.description || ""))));
  }
  root.append(schemes);

  root.append(el("h2", {id: "schemas"}, "Schemas"));
  for (const [name, schema] of Object.entries(components.schemas || {})) {
    const section = el("section", {id: "schema-" + name}, el("h3", {}, name));
    section.append(schemaView(schema, 0, new Set([name])));
    root.append(section);
  }
  if (location.hash) {
    const target = document.getElementById(location.hash.slice(1));
    if (target && target.tagName === "DETAILS") target.open = true;
    if (target) target.scrollIntoView();
  }
}

document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest('a[href^="#op-"]');
  if (link) {
    const target = document.getElementById(link.getAttribute("href").slice(1));
    if (target) target.open = true;
  }
});

render();

// A processor's result as tables a person reads: one row per layer or file (feature counts,
// geometry types, bounding box, CRS), then the result's other members. Any processor's result
// works; the built-in ones get named columns. Shared by the upload page and pages that embed it.
"use strict";

window.handoffResults = (function () {
  const LABELS = {
    file: "File", name: "Name", size: "Size", sha256: "sha256", type: "Type",
    version: "Version", feature_count: "Features", geometry_types: "Geometry types",
    geometry_type: "Geometry type", without_geometry: "Without geometry", bbox: "Bounding box",
    bbox_source: "Bounding box from", crs: "CRS", srs: "CRS", fields: "Fields",
    data_type: "Data type", identifier: "Identifier", geometry_column: "Geometry column",
  };
  // Columns in this order (LABELS'), any others after them.
  const ORDER = Object.keys(LABELS);
  // Rows with nothing but these repeat the status document's files.
  const FILE_KEYS = new Set(["name", "size", "sha256"]);

  function number(value) {
    return Number.isInteger(value) ? value.toLocaleString("en") : String(Number(value.toPrecision(8)));
  }

  function bbox(value) {
    if (!Array.isArray(value) || value.length !== 4) {
      return "none";
    }
    const [x0, y0, x1, y1] = value.map(number);
    return `${x0}, ${y0} to ${x1}, ${y1}`;
  }

  // GeoJSON's crs member (null: WGS 84, RFC 7946), a .prj's name, a GeoPackage's srs.
  function crs(value) {
    if (value === null || value === undefined) {
      return "not stated (WGS 84)";
    }
    if (value.present === false) {
      return "not stated";
    }
    if (value.properties && value.properties.name) {
      return value.properties.name;
    }
    if (value.organization) {
      return `${value.organization}:${value.organization_coordsys_id} ${value.name || ""}`.trim();
    }
    return value.name || JSON.stringify(value);
  }

  function counts(value) {
    return Object.entries(value).map(([kind, count]) => `${kind} ${number(count)}`).join(", ")
      || "none";
  }

  const FORMATS = { bbox, crs, srs: crs, geometry_types: counts, size: (v) => `${number(v)} bytes` };

  function cell(key, value) {
    if (FORMATS[key]) {
      return FORMATS[key](value);
    }
    if (typeof value === "number") {
      return number(value);
    }
    if (typeof value === "boolean") {
      return value ? "yes" : "no";
    }
    if (Array.isArray(value) && value.every((item) => typeof item !== "object")) {
      return value.join(", ");
    }
    return value === null ? "none" : typeof value === "object" ? JSON.stringify(value) : String(value);
  }

  function node(tag, className, text) {
    const made = document.createElement(tag);
    if (className) {
      made.className = className;
    }
    if (text !== undefined) {
      made.textContent = text;
    }
    return made;
  }

  function rank(key) {
    const index = ORDER.indexOf(key);
    return index < 0 ? ORDER.length : index;
  }

  // Each cell carries its column's name, so a narrow screen can stack a row as label: value.
  function table(rows, columns) {
    const keys = columns || [...new Set(rows.flatMap(Object.keys))].filter((key) => key !== "wkt")
      .sort((a, b) => rank(a) - rank(b));
    const made = node("table", "readable");
    const head = made.createTHead().insertRow();
    keys.forEach((key) => head.append(node("th", null, LABELS[key] || key)));
    const body = made.createTBody();
    rows.forEach((row) => {
      const line = body.insertRow();
      keys.forEach((key) => {
        const td = node("td", key, key in row ? cell(key, row[key]) : "");
        td.dataset.label = LABELS[key] || key;
        line.append(td);
      });
    });
    return made;
  }

  // A shapefile's layers, a GeoPackage's layers (under their file), GeoJSON's files.
  function rowsOf(result) {
    if (Array.isArray(result.layers)) {
      return result.layers;
    }
    if (!Array.isArray(result.files)) {
      return [];
    }
    const rows = result.files.flatMap((file) => (Array.isArray(file.layers)
      ? file.layers.map((layer) => ({ file: file.file, version: file.version, ...layer }))
      : [file]));
    return rows.some((row) => Object.keys(row).some((key) => !FILE_KEYS.has(key))) ? rows : [];
  }

  function result(value) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return [node("p", "result-value", cell("result", value))];
    }
    const rows = rowsOf(value);
    const rest = Object.entries(value).filter(([key]) => key !== "layers" && key !== "files");
    const made = rows.length ? [table(rows)] : [];
    if (rest.length) {
      const summary = node("dl", "result-summary");
      rest.forEach(([key, item]) => summary.append(node("dt", null, LABELS[key] || key),
                                                   node("dd", key, cell(key, item))));
      made.push(summary);
    }
    return made;
  }

  return { table, result, node };
})();

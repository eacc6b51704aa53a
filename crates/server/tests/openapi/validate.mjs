// Validates the OpenAPI description of Switchboard's web API, as served by a
// running server, and (optionally) real responses against it.
//
//   node validate.mjs DOCUMENT.json [SAMPLES.json]
//
// 1. The document is checked against the OpenAPI 3.1 schema
//    (@seriousme/openapi-schema-validator).
// 2. Every `$ref` resolves, and every schema under components/schemas
//    compiles as a JSON Schema 2020-12 schema (Ajv).
// 3. SAMPLES.json, if given, is an array of recorded exchanges
//    `{method, path, status, content_type, body}` (path as requested, body as
//    JSON or null): each must match an operation of the document, a response
//    declared for its status with its media type, and that response's schema.
//    For this check, object schemas that list `properties` and say nothing
//    about other properties are closed (`additionalProperties: false`), so a
//    field the server sends but the document does not describe fails too.
//
// Exits 0 when everything holds; otherwise prints every failure and exits 1.

import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [docPath, samplesPath] = process.argv.slice(2);
if (!docPath) {
	console.error("usage: node validate.mjs DOCUMENT.json [SAMPLES.json]");
	process.exit(2);
}
const failures = [];
const doc = JSON.parse(readFileSync(docPath, "utf8"));

// 1. The OpenAPI schema.
const validator = new Validator();
const result = await validator.validate(structuredClone(doc));
if (!result.valid) {
	failures.push(
		`not a valid OpenAPI ${doc.openapi} document:\n${JSON.stringify(result.errors, null, 2)}`,
	);
}
if (doc.openapi !== "3.1.0") {
	failures.push(`openapi is ${JSON.stringify(doc.openapi)}, expected "3.1.0"`);
}

// 2. References and schemas.
function pointer(root, ref) {
	if (!ref.startsWith("#/")) return undefined;
	let node = root;
	for (const raw of ref.slice(2).split("/")) {
		const key = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
		if (node === null || typeof node !== "object" || !(key in node)) return undefined;
		node = node[key];
	}
	return node;
}
(function refs(node, where) {
	if (Array.isArray(node)) {
		node.forEach((n, i) => refs(n, `${where}/${i}`));
	} else if (node && typeof node === "object") {
		if (typeof node.$ref === "string" && pointer(doc, node.$ref) === undefined) {
			failures.push(`${where}: $ref ${node.$ref} does not resolve`);
		}
		for (const [k, v] of Object.entries(node)) refs(v, `${where}/${k}`);
	}
})(doc, "#");

const BASE = "https://switchboard.invalid/openapi.json";
function absolute(node, close) {
	if (Array.isArray(node)) return node.map((n) => absolute(n, close));
	if (!node || typeof node !== "object") return node;
	const out = {};
	for (const [k, v] of Object.entries(node)) {
		if (k === "$ref" && typeof v === "string" && v.startsWith("#")) out[k] = BASE + v;
		else if (k === "properties" || k === "patternProperties" || k === "$defs") {
			out[k] = Object.fromEntries(
				Object.entries(v).map(([name, s]) => [name, absolute(s, close)]),
			);
		} else out[k] = absolute(v, close);
	}
	if (
		close &&
		out.properties &&
		out.additionalProperties === undefined &&
		out.unevaluatedProperties === undefined
	) {
		out.additionalProperties = false;
	}
	return out;
}
function ajvFor(close) {
	const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
	addFormats(ajv);
	ajv.addSchema({ $id: BASE, components: absolute(doc.components ?? {}, close) });
	return ajv;
}
const loose = ajvFor(false);
for (const name of Object.keys(doc.components?.schemas ?? {})) {
	try {
		loose.compile({ $ref: `${BASE}#/components/schemas/${name}` });
	} catch (e) {
		failures.push(`components/schemas/${name} does not compile: ${e.message}`);
	}
}

// 3. Recorded exchanges.
if (samplesPath) {
	const strict = ajvFor(true);
	const compiled = new Map();
	const templates = Object.keys(doc.paths ?? {}).map((t) => {
		const literal = t.replace(/\{[^}]+\}/g, "").length;
		const re = new RegExp(
			`^${t
				.split(/(\{[^}]+\})/)
				.map((part) =>
					part.startsWith("{") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
				)
				.join("")}$`,
		);
		return { t, re, literal };
	});
	const samples = JSON.parse(readFileSync(samplesPath, "utf8"));
	let checked = 0;
	for (const s of samples) {
		const path = s.path.split("?")[0];
		const label = `${s.method} ${s.path} → ${s.status}`;
		const match = templates
			.filter(({ re }) => re.test(path))
			.sort((a, b) => b.literal - a.literal)[0];
		if (!match) {
			failures.push(`${label}: no path of the document matches`);
			continue;
		}
		const operation = doc.paths[match.t][s.method.toLowerCase()];
		if (!operation) {
			failures.push(`${label}: ${match.t} has no ${s.method} operation`);
			continue;
		}
		let response = operation.responses?.[String(s.status)] ?? operation.responses?.default;
		if (response?.$ref) response = pointer(doc, response.$ref);
		if (!response) {
			failures.push(`${label}: status ${s.status} is not declared for ${s.method} ${match.t}`);
			continue;
		}
		const essence = (s.content_type ?? "").split(";")[0].trim().toLowerCase();
		if (!response.content) {
			if (s.body !== null && s.body !== undefined && s.body !== "") {
				failures.push(`${label}: the document declares no body, the server sent ${essence}`);
			}
			checked++;
			continue;
		}
		const media = response.content[essence];
		if (!media) {
			failures.push(
				`${label}: the server sent ${essence || "no content type"}, the document declares ${Object.keys(response.content).join(", ")}`,
			);
			continue;
		}
		if (!essence.endsWith("json") || !media.schema) {
			checked++;
			continue;
		}
		const key = JSON.stringify(media.schema);
		let validate = compiled.get(key);
		if (!validate) {
			validate = strict.compile(absolute(media.schema, true));
			compiled.set(key, validate);
		}
		if (validate(s.body)) {
			checked++;
		} else {
			failures.push(
				`${label} (${match.t}): the body does not match the document:\n  ${strict.errorsText(validate.errors, { separator: "\n  " })}\n  body: ${JSON.stringify(s.body).slice(0, 800)}`,
			);
		}
	}
	console.log(`${checked} of ${samples.length} recorded responses match the document`);
}

if (failures.length > 0) {
	console.error(failures.join("\n\n"));
	process.exit(1);
}
console.log(
	`OpenAPI ${doc.openapi} document is valid: ${Object.keys(doc.paths).length} paths, ${Object.keys(doc.components?.schemas ?? {}).length} schemas`,
);

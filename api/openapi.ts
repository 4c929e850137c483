// The OpenAPI 3.1 document, generated from the route table and the zod schemas the routes
// validate with (JSON Schema 2020-12 is OpenAPI 3.1's schema dialect, so z.toJSONSchema fits).
import { z } from 'zod';
import type { Config } from '../config';
import { PROBLEM_CONTENT_TYPE } from './problem';
import { RATE_LIMITED_PREFIXES } from './rate-limit';
import type { ResponseSpec, RouteSpec } from './route';
import { apiSchemas, IdempotencyKeyHeader } from './schemas';

type JsonObject = Record<string, unknown>;

const COMPONENT_PREFIX = '#/components/schemas/';

function stripDialect(schema: JsonObject): JsonObject {
  const { $schema: _s, $id: _i, ...rest } = schema;
  return rest;
}

/** A named schema becomes a $ref; anything else is inlined. */
function schemaRef(schema: z.ZodType): JsonObject {
  const id = apiSchemas.get(schema)?.id;
  if (id) return { $ref: `${COMPONENT_PREFIX}${id}` };
  return stripDialect(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonObject);
}

/** Express `:name` -> OpenAPI `{name}`. */
export const openApiPath = (expressPath: string) => expressPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

const SECURITY: Record<RouteSpec['security'], JsonObject[]> = {
  apiKey: [{ apiKey: [] }, { bearer: [] }],
  storeSession: [{ storeSession: [] }],
  fpsSignature: [],
  none: [],
};

function response(status: number, spec: ResponseSpec | string): JsonObject {
  const r: ResponseSpec = typeof spec === 'string' ? { description: spec } : spec;
  const out: JsonObject = { description: r.description };
  if (r.headers)
    out.headers = Object.fromEntries(
      Object.entries(r.headers).map(([name, description]) => [name, { description, schema: { type: 'string' } }]),
    );
  if (r.schema)
    out.content = Object.fromEntries(
      [{ contentType: r.contentType ?? 'application/json', schema: r.schema }, ...(r.alternatives ?? [])].map(
        ({ contentType, schema }) => [contentType, { schema: schemaRef(schema) }],
      ),
    );
  else if (status >= 400) out.content = { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: `${COMPONENT_PREFIX}Problem` } } };
  return out;
}

function operation(spec: RouteSpec): JsonObject {
  const parameters: JsonObject[] = [];
  for (const [name, schema] of Object.entries(spec.params ?? {})) {
    parameters.push({ name, in: 'path', required: true, schema: schemaRef(schema) });
  }
  for (const [name, q] of Object.entries(spec.query ?? {})) {
    parameters.push({
      name,
      in: 'query',
      required: q.required ?? false,
      description: q.description,
      schema: schemaRef(q.schema),
    });
  }
  if (spec.idempotencyKey) {
    parameters.push({
      name: 'Idempotency-Key',
      in: 'header',
      required: false,
      schema: schemaRef(IdempotencyKeyHeader),
      description: IdempotencyKeyHeader.meta()?.description,
    });
  }

  const responses: Record<string, unknown> = {};
  const all: Record<number, ResponseSpec | string> = { ...spec.responses };
  if (spec.security === 'apiKey') all[401] ??= 'Missing or invalid API key (missing_api_key, invalid_api_key)';
  if (spec.body) {
    const json = (spec.body.contentType ?? 'application/json') === 'application/json';
    all[400] ??= json ? 'Malformed JSON (malformed_json)' : 'Malformed request';
    all[413] ??= 'Body larger than 16 kB (payload_too_large)';
    all[415] ??= `Body is not ${spec.body.contentType ?? 'application/json'} (unsupported_media_type)`;
  }
  if (RATE_LIMITED_PREFIXES.some((prefix) => spec.path.startsWith(prefix))) {
    all[429] ??= 'More requests than API_RATE_LIMIT_PER_SECOND for this API key (rate_limited); see Retry-After';
  }
  all[500] ??= 'Unexpected error (internal_error); details are logged, not returned';
  for (const status of Object.keys(all)
    .map(Number)
    .sort((a, b) => a - b))
    responses[String(status)] = response(status, all[status]);

  const op: JsonObject = {
    operationId: spec.operationId,
    summary: spec.summary,
    tags: [spec.tag],
    security: SECURITY[spec.security],
    parameters,
    responses,
  };
  if (spec.description) op.description = spec.description;
  if (spec.body) {
    op.requestBody = {
      required: spec.body.required ?? false,
      content: { [spec.body.contentType ?? 'application/json']: { schema: schemaRef(spec.body.schema) } },
    };
  }
  return op;
}

export function openApiDocument(routes: readonly RouteSpec[], cfg: Config): JsonObject {
  const components = z.toJSONSchema(apiSchemas, {
    uri: (id) => `${COMPONENT_PREFIX}${id}`,
    io: 'input',
    unrepresentable: 'any',
  }) as { schemas: Record<string, JsonObject> };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const spec of routes) {
    const path = openApiPath(spec.path);
    paths[path] ??= {};
    paths[path][spec.method] = operation(spec);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'FPS instruments merchant API',
      version: '0.1.0',
      description:
        'Durable Amazon FPS payment instruments (prepaid, postpaid, single use) on Temporal. Amounts are decimal strings with a currency; ' +
        'errors are application/problem+json with a machine-readable `code` and the `field` at fault. See api/README.md.',
    },
    servers: [{ url: cfg.api.publicUrl }],
    tags: [
      { name: 'instruments', description: 'Create, read and list instruments' },
      { name: 'operations', description: 'Money operations (Temporal Updates); POSTs take an Idempotency-Key' },
      { name: 'record', description: 'The durable record: transactions of any age, statements as JSON or CSV' },
      { name: 'fps callbacks', description: 'Signed return URL and IPNs from FPS (or the sandbox)' },
      { name: 'webhooks', description: 'Webhook endpoints (signed event delivery with retries) and the event log' },
      { name: 'storefront', description: 'Same-origin backend of the demo storefront (session cookie, no API key)' },
      { name: 'service', description: 'Health and this document' },
    ],
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(components.schemas).map(([id, schema]) => [id, stripDialect(schema)])),
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-Api-Key' },
        bearer: { type: 'http', scheme: 'bearer', description: 'The same API key as a bearer token' },
        storeSession: {
          type: 'apiKey',
          in: 'cookie',
          name: 'fps_store_session',
          description: 'Set by GET /store/api/session',
        },
      },
    },
  };
}

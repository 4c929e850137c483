// A route is declared once, with its schemas and responses: app.ts mounts it and openapi.ts
// describes it from the same object, so the document cannot miss a route or drift from it.
import type { Request, RequestHandler, Response } from 'express';
import type { z } from 'zod';

export type Method = 'get' | 'post' | 'patch' | 'delete';
export type Security = 'apiKey' | 'storeSession' | 'fpsSignature' | 'none';

export interface ResponseSpec {
  description: string;
  /** A named schema from api/schemas.ts (application/json unless contentType says otherwise). */
  schema?: z.ZodType;
  contentType?: string;
  /** The same response in other media types the client may ask for with Accept (e.g. text/csv). */
  alternatives?: Array<{ contentType: string; schema: z.ZodType }>;
  headers?: Record<string, string>;
}

export interface RouteSpec {
  method: Method;
  /** Express path, e.g. /instruments/:instrumentId/purchases. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  security: Security;
  params?: Record<string, z.ZodType>;
  query?: Record<string, { schema: z.ZodType; required?: boolean; description?: string }>;
  idempotencyKey?: boolean;
  body?: {
    schema: z.ZodType;
    contentType?: 'application/json' | 'application/x-www-form-urlencoded';
    required?: boolean;
  };
  /** Statuses this route answers with; problem responses (4xx/5xx) use the Problem schema. */
  responses: Record<number, ResponseSpec | string>;
  /** Middleware that runs before the handler (after authentication), e.g. a body parser. */
  before?: RequestHandler[];
  handler: (req: Request, res: Response) => Promise<void> | void;
}

export const route = (spec: RouteSpec): RouteSpec => spec;

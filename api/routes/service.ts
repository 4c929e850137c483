// Service routes: liveness, readiness (Temporal reachable) and the OpenAPI document.
import { z } from 'zod';
import type { ApiContext } from '../context';
import { route, type RouteSpec } from '../route';
import { Health } from '../schemas';

export function serviceRoutes(ctx: ApiContext, openApi: () => unknown): RouteSpec[] {
  return [
    route({
      method: 'get',
      path: '/healthz',
      operationId: 'healthz',
      summary: 'Liveness: the process is up',
      tag: 'service',
      security: 'none',
      responses: { 200: { description: 'Up', schema: Health } },
      handler: (_req, res) => {
        res.json({ status: 'ok' });
      },
    }),
    route({
      method: 'get',
      path: '/readyz',
      operationId: 'readyz',
      summary: 'Readiness: Temporal answers',
      tag: 'service',
      security: 'none',
      responses: {
        200: { description: 'Ready', schema: Health },
        503: { description: 'Temporal unreachable', schema: Health },
      },
      handler: async (_req, res) => {
        try {
          await ctx.instruments.ready();
          res.json({ status: 'ok', temporal: 'reachable' });
        } catch (err) {
          ctx.logger.warn({ err: (err as Error).message }, 'readiness check failed');
          res.status(503).json({ status: 'unavailable', temporal: 'unreachable' });
        }
      },
    }),
    route({
      method: 'get',
      path: '/openapi.json',
      operationId: 'openapi',
      summary: 'This API as OpenAPI 3.1',
      tag: 'service',
      security: 'none',
      responses: { 200: { description: 'The document', schema: z.looseObject({ openapi: z.string() }) } },
      handler: (_req, res) => {
        res.json(openApi());
      },
    }),
  ];
}

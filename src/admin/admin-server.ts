/**
 * The admin listener: health, readiness and Prometheus metrics, on loopback by default and
 * separate from the agent-facing listener; with admin.token, also the auditor's view of the
 * trail behind that token. Express and helmet live here, off the per-call path.
 */
import http from 'node:http';
import express from 'express';
import helmet from 'helmet';
import type { ListenAddress } from '../config/types';
import { type EdgeAllowList, judgeEdge } from '../edge/allow-list';
import { type Bound, bindListener } from '../edge/listen';
import type { ConfigLocation } from '../errors';
import type { Metrics } from '../observability/metrics';

/** What readiness depends on. */
export interface ReadinessProbe {
  /** Empty when ready; otherwise the reasons it is not. */
  problems(): string[];
  /** Facts shown beside the status that do not change it (the policy's drift). */
  details?(): Record<string, unknown>;
}

/**
 * Builds the admin app. `edge` gives the listener's Host and Origin allow-list (known once it is
 * bound): a request outside it gets a plain 403 JSON before any route runs (G20).
 */
export function createAdminApp(
  metrics: Metrics,
  readiness: ReadinessProbe,
  edge: () => EdgeAllowList | null,
  /** More routes once they exist (the auditor's view with admin.token: src/audit/viewer/server.ts), after the open ones. */
  more: () => express.RequestHandler | null = () => null,
): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(helmet());
  app.use((req, res, next) => {
    const list = edge();
    const refused = list ? judgeEdge(list, req.headersDistinct.host, req.headersDistinct.origin) : 'host';
    if (refused === null) return next();
    const code = refused === 'host' ? 'PC_BAD_HOST' : 'PC_BAD_ORIGIN';
    res
      .status(403)
      .set('cache-control', 'no-store')
      .json({ error: { code, message: `this listener does not answer to that ${refused === 'host' ? 'Host' : 'Origin'}` } });
  });
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const problems = readiness.problems();
    res.status(problems.length ? 503 : 200).json({ status: problems.length ? 'not ready' : 'ready', problems, ...readiness.details?.() });
  });
  app.get('/metrics', async (_req, res) => {
    res.set('content-type', metrics.registry.contentType);
    res.send(await metrics.registry.metrics());
  });
  app.use((req, res, next) => {
    const handler = more();
    if (handler) return handler(req, res, next);
    next();
  });
  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });
  return app;
}

/** Starts the admin listener at `address` (host:port or a Unix socket). */
export async function startAdminServer(app: express.Express, address: ListenAddress, where: ConfigLocation): Promise<{ server: http.Server; bound: Bound }> {
  const server = http.createServer(app);
  return { server, bound: await bindListener(server, address, where) };
}

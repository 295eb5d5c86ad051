/**
 * The admin listener: health, readiness and Prometheus metrics, on loopback by default and
 * separate from the agent-facing listener. Express and helmet live here, off the per-call path.
 */
import http from 'node:http';
import express from 'express';
import helmet from 'helmet';
import type { Metrics } from '../observability/metrics';

/** What readiness depends on. */
export interface ReadinessProbe {
  /** Empty when ready; otherwise the reasons it is not. */
  problems(): string[];
  /** Facts shown beside the status that do not change it (the policy's drift). */
  details?(): Record<string, unknown>;
}

/** Builds the admin app. */
export function createAdminApp(metrics: Metrics, readiness: ReadinessProbe): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(helmet());
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
  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });
  return app;
}

/** Starts the admin listener. */
export function startAdminServer(app: express.Express, host: string, port: number): Promise<http.Server> {
  const server = http.createServer(app);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

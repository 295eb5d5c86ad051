/**
 * `portcullis audit serve`: the auditor's view of a copied trail, read-only, with no gateway
 * running. Express serves the pages (pages.ts) with helmet's headers and a strict CSP (no inline
 * script or style, nothing from another origin); the assets come from the package. Loopback by
 * default: any other address needs a token (Authorization: Bearer, or the cookie /login sets).
 * The Host header must name the listener (a DNS-rebinding page cannot read the trail). Only GET
 * and HEAD are answered.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import { runExport, type ExportFormat } from '../offline/export';
import { jsonLine } from '../offline/output-formats';
import { parseTimeBound, QueryOptionError, runQuery } from '../offline/query';
import { credentialsBody, decisionBody, deniesBody, FILTER_KEYS, type FilterParams, filterOf, loadingPage, page, policiesBody, timelineBody } from './pages';
import { openInWorker } from './open-worker';
import { decisionDetail, type OpenProgress, timelinePage, type TrailView } from './trail-view';

/** Rows per timeline page. */
export const PAGE_SIZE = 100;
const COOKIE = 'portcullis_audit';

/** Options of serveTrail. */
export interface ServeOptions {
  readonly trail: string;
  /** Trusted verifier keys (text form); empty: audit.pub beside the trail. */
  readonly keys: readonly string[];
  readonly host: string;
  readonly port: number;
  /** Required when host is not a loopback address. */
  readonly token: string | null;
  /** How the trail is opened (default: openInWorker); tests hold it to see the progress page. */
  readonly open?: typeof openInWorker;
}

/** A running view. */
export interface TrailServer {
  readonly url: string;
  /** The opened trail, once verified and summarised (pages show the progress until then). */
  readonly ready: Promise<TrailView>;
  close(): Promise<void>;
}

const LOOPBACK = /^(127(\.\d{1,3}){3}|::1|localhost)$/i;

/** The package's assets folder (src/ under ts-jest, dist/src/ when built). */
function assetsDir(): string {
  for (const rel of ['../../../assets/viewer', '../../../../assets/viewer']) {
    const dir = path.resolve(__dirname, rel);
    if (existsSync(path.join(dir, 'viewer.js'))) return dir;
  }
  throw new Error('the viewer assets are missing from the package');
}

const ASSETS: Readonly<Record<string, { readonly file: () => string; readonly type: string }>> = {
  'viewer.js': { file: () => path.join(assetsDir(), 'viewer.js'), type: 'text/javascript' },
  'viewer.css': { file: () => path.join(assetsDir(), 'viewer.css'), type: 'text/css' },
  // chart.js exports no subpaths: its UMD build sits beside the CommonJS entry in dist/.
  'chart.umd.js': { file: () => path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.js'), type: 'text/javascript' },
};

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Options of the view's routes (trailViewRoutes). */
export interface TrailViewOptions {
  readonly trail: string;
  readonly keys: readonly string[];
  /** Pages need `Authorization: Bearer` or the cookie /login sets; null: no token (loopback only). */
  readonly token: string | null;
  readonly open?: typeof openInWorker;
  /**
   * A live trail (the admin listener of a running gateway): opened on the first request, opened
   * again in the background once the view is older than this (ms), the old view served meanwhile.
   * Absent: opened once, at once.
   */
  readonly reopenAfterMs?: number;
}

/** The view's routes: read-only, strict CSP, token when configured, the progress until the verdict. */
export function trailViewRoutes(o: TrailViewOptions): { readonly router: express.Router; readonly ready: () => Promise<TrailView> } {
  // Verified in a worker while the server already answers: every page shows the progress until
  // the verdict is known, and nothing of the trail before.
  let view: TrailView | null = null;
  let progress: OpenProgress | null = null;
  let failure: string | null = null;
  let opening: Promise<TrailView> | null = null;
  let openedAt = 0;
  const open = (): Promise<TrailView> => {
    opening ??= (o.open ?? openInWorker)(
      o.trail,
      o.keys,
      (p) => {
        if (!view) progress = p;
      },
      o.reopenAfterMs !== undefined,
    )
      .then((v) => {
        view = v;
        failure = null;
        openedAt = Date.now();
        return v;
      })
      .catch((err: Error) => {
        if (!view) failure = err.message;
        throw err;
      })
      .finally(() => {
        opening = null;
      });
    const pending = opening;
    pending.catch(() => undefined);
    return pending;
  };
  let first: Promise<TrailView> | null = o.reopenAfterMs === undefined ? open() : null;
  const router = express.Router();
  router.use((req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.status(405).set('allow', 'GET, HEAD').type('text/plain').send('read-only');
    next();
  });
  router.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'none'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'", 'data:'],
          connectSrc: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          baseUri: ["'none'"],
        },
      },
      referrerPolicy: { policy: 'no-referrer' },
    }),
  );
  router.use((_req, res, next) => {
    res.set('cache-control', 'no-store');
    next();
  });
  if (o.token) {
    const want = digest(o.token);
    const ok = (presented: string | undefined) => presented !== undefined && timingSafeEqual(digest(presented), want);
    router.get('/login', (req, res) => {
      if (!ok(typeof req.query.token === 'string' ? req.query.token : undefined)) return void res.status(401).type('text/plain').send('bad token');
      res.cookie(COOKIE, o.token as string, { httpOnly: true, sameSite: 'strict', path: '/' });
      res.redirect(303, '/timeline');
    });
    router.use((req, res, next) => {
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const cookie = (req.headers.cookie ?? '')
        .split(';')
        .map((c) => c.trim())
        .find((c) => c.startsWith(`${COOKIE}=`))
        ?.slice(COOKIE.length + 1);
      if (ok(bearer) || ok(cookie ? decodeURIComponent(cookie) : undefined)) return next();
      res.status(401).type('text/plain').send('a token is needed: open /login?token=…');
    });
  }
  router.get('/assets/:name', (req, res) => {
    const a = ASSETS[String(req.params.name)];
    if (!a || !Object.hasOwn(ASSETS, String(req.params.name))) return void res.status(404).end();
    res.type(a.type).send(readFileSync(a.file()));
  });
  router.use((_req, res, next) => {
    if (o.reopenAfterMs !== undefined) {
      first ??= open();
      if (view && Date.now() - openedAt > o.reopenAfterMs) void open().catch(() => undefined);
    }
    if (view) return next();
    res
      .status(failure ? 500 : 503)
      .type('text/html; charset=utf-8')
      .send(loadingPage(progress, failure));
  });
  /** The opened trail: the routes below run only once it is (the middleware above). */
  const v = () => view as TrailView;
  const params = (req: Request): FilterParams => {
    const out: Record<string, string> = {};
    for (const k of FILTER_KEYS) {
      const v = req.query[k];
      if (typeof v === 'string' && v !== '') out[k] = v.slice(0, 256);
    }
    return out;
  };
  const send = (res: Response, html: string) => res.type('text/html; charset=utf-8').send(html);
  const guard = (fn: (req: Request, res: Response) => void) => (req: Request, res: Response) => {
    try {
      fn(req, res);
    } catch (err) {
      if (err instanceof QueryOptionError) res.status(400).type('text/plain').send(err.message);
      else throw err;
    }
  };

  router.get('/', (_req, res) => res.redirect(302, '/timeline'));
  router.get(
    '/timeline',
    guard((req, res) => {
      const p = params(req);
      const offset = Math.max(0, Math.min(Number.parseInt(String(req.query.offset ?? '0'), 10) || 0, 10_000_000));
      const { hits, more } = timelinePage(v(), filterOf(p, parseTimeBound), offset, PAGE_SIZE);
      send(res, page(v(), 'Timeline', '/timeline', timelineBody(hits, p, offset, PAGE_SIZE, more)));
    }),
  );
  router.get('/denies', (_req, res) => send(res, page(v(), 'Denies', '/denies', deniesBody(v().summary))));
  router.get('/credentials', (_req, res) => send(res, page(v(), 'Credentials', '/credentials', credentialsBody(v().summary))));
  router.get('/policies', (_req, res) => send(res, page(v(), 'Policy revisions', '/policies', policiesBody(v().summary))));
  router.get('/decision/:id', (req, res) => {
    const d = decisionDetail(v(), String(req.params.id).slice(0, 128));
    if (!d) return void res.status(404).type('text/plain').send('no such decision in this trail');
    send(res, page(v(), `Decision ${String(d.record.decision_id)}`, '', decisionBody(d)));
  });
  router.get(
    '/export',
    guard((req, res) => {
      const p = params(req);
      const format = String(req.query.format ?? 'jsonl');
      const filter = filterOf(p, parseTimeBound);
      const chunks: string[] = [];
      const write = (c: string) => chunks.push(c);
      if (format === 'jsonl') {
        runQuery(v().dir, { ...filter, types: ['decision'] }, {}, (hit) => write(`${jsonLine(hit)}\n`));
      } else if (format === 'csv' || format === 'ocsf' || format === 'ecs') {
        runExport(v().dir, { format: format as ExportFormat, filter: { ...filter, types: ['decision'] }, write });
      } else throw new QueryOptionError(`unknown export format ${JSON.stringify(format.slice(0, 32))}: jsonl, csv, ocsf or ecs`);
      res.set('content-disposition', `attachment; filename="portcullis-audit.${format === 'csv' ? 'csv' : 'jsonl'}"`);
      res.type(format === 'csv' ? 'text/csv' : 'application/x-ndjson').send(chunks.join(''));
    }),
  );

  return {
    router,
    ready: () => {
      first ??= open();
      return first;
    },
  };
}

/** Verifies and summarises the trail (in a worker), and listens at once. Throws a QueryOptionError for a refused option. */
export async function serveTrail(o: ServeOptions): Promise<TrailServer> {
  if (!LOOPBACK.test(o.host) && !o.token) throw new QueryOptionError(`listening on ${o.host} (not loopback) needs a token: give --token-file FILE`);
  const view = trailViewRoutes({ trail: o.trail, keys: o.keys, token: o.token, ...(o.open ? { open: o.open } : {}) });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  let allowedHosts: Set<string> = new Set();
  // The Host must name this listener: a DNS-rebinding page cannot read the trail.
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!allowedHosts.has((req.headers.host ?? '').toLowerCase()))
      return void res.status(403).type('text/plain').send('this view does not answer to that Host');
    next();
  });
  app.use(view.router);
  app.use((_req, res) => res.status(404).type('text/plain').send('not found'));
  const ready = view.ready();
  const server: http.Server = await new Promise((resolve, reject) => {
    const s = app.listen(o.port, o.host, () => resolve(s));
    s.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  const hostPart = o.host.includes(':') ? `[${o.host}]` : o.host;
  allowedHosts = new Set([`${hostPart}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`].map((x) => x.toLowerCase()));
  return {
    url: `http://${hostPart}:${port}`,
    ready,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Browser test helpers (issue 15): Debian's chromium, installed by scripts/env.sh
 * (ensure_chromium, which exports PORTCULLIS_CHROMIUM), driven by puppeteer-core; puppeteer's
 * own browser download cannot reach the internet from these machines.
 *
 * openPage records everything a page does that a test may need to prove it inert: each console
 * message (Chromium reports a CSP refusal there too, as an error), each dialog (dismissed, so an
 * alert() never blocks the page), each uncaught page error, each Content-Security-Policy
 * violation (the securitypolicyviolation event), and each request URL and each failed request
 * (to prove nothing is fetched from outside the page's origin: see outsideOrigin).
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import puppeteer, { type Browser, type GoToOptions, type HTTPResponse, type LaunchOptions, type Page } from 'puppeteer-core';

/** The chromium to drive: PORTCULLIS_CHROMIUM (scripts/env.sh), else Debian's. */
export const CHROMIUM = process.env.PORTCULLIS_CHROMIUM || '/usr/bin/chromium';

/** Why the browser tests are skipped here, or '' when they run. */
export const BROWSER_SKIP =
  process.env.PORTCULLIS_CHROMIUM_SKIP ||
  (existsSync(CHROMIUM) ? '' : `chromium is not installed at ${CHROMIUM}: run the tests with npm test (scripts/env.sh ensure_chromium installs it)`);

/** Where saveScreenshot writes: test-artifacts/screenshots/ in the repository (git-ignored). */
export const SCREENSHOT_DIR = path.join(__dirname, '../../test-artifacts/screenshots');

/**
 * `describe` for a suite that needs the browser; `describe.skip`, saying why, when chromium is
 * not available (like the tunnel and moto tests).
 */
export function describeBrowser(name: string, fn: () => void): void {
  if (BROWSER_SKIP) {
    console.warn(`${name} is skipped: ${BROWSER_SKIP}`);
    describe.skip(`${name} (skipped: ${BROWSER_SKIP})`, fn);
  } else {
    describe(name, fn);
  }
}

/**
 * Headless chromium. --no-sandbox: the tests run as root here, which Chromium's sandbox
 * refuses. --disable-dev-shm-usage: shared memory in /tmp rather than /dev/shm, which is 64 MB
 * in a default container and crashes the renderer. --disable-gpu: there is none. A 1280x800
 * viewport for the screenshots. `options` overrides any of it.
 */
export async function launchBrowser(options: LaunchOptions = {}): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    defaultViewport: { width: 1280, height: 800 },
    ...options,
  });
}

export interface RecordedConsoleMessage {
  type: string; // 'log', 'error', 'warn', ...
  text: string;
  url?: string;
}

export interface RecordedDialog {
  type: string; // 'alert', 'confirm', 'prompt', 'beforeunload'
  message: string;
}

export interface RecordedCspViolation {
  directive: string; // the effective directive, e.g. 'script-src-elem', 'script-src-attr'
  blockedURI: string; // 'inline', 'eval', or the URL refused
  sample: string; // the refused inline code's first 40 characters, if the CSP has 'report-sample'
}

export interface OpenedPage {
  page: Page;
  /** The navigation's main response (null for about:blank and same-document navigations). */
  response: HTTPResponse | null;
  consoleMessages: RecordedConsoleMessage[];
  dialogs: RecordedDialog[];
  pageErrors: string[];
  cspViolations: RecordedCspViolation[];
  /**
   * Every request URL, the document's own first, in the order they were made. Chromium reports
   * a request its CSP refused here too: each such one is also in failedRequests, with the error
   * 'csp' (puppeteer reports the DevTools blockedReason).
   */
  requests: string[];
  /** The requests that got no response, with Chromium's reason ('csp', 'net::ERR_CONNECTION_REFUSED', ...). */
  failedRequests: { url: string; error: string }[];
}

const CSP_BINDING = '__portcullisTestCspViolation';

/**
 * A new page in `browser` with its recorders attached before it navigates to `url`; resolves
 * once `waitUntil` (default 'load') is reached. The recorders keep recording afterwards.
 */
export async function openPage(browser: Browser, url: string, options: GoToOptions = {}): Promise<OpenedPage> {
  const page = await browser.newPage();
  const opened: OpenedPage = { page, response: null, consoleMessages: [], dialogs: [], pageErrors: [], cspViolations: [], requests: [], failedRequests: [] };
  page.on('console', (m) => {
    opened.consoleMessages.push({ type: m.type(), text: m.text(), url: m.location().url });
  });
  page.on('dialog', (d) => {
    opened.dialogs.push({ type: d.type(), message: d.message() });
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => {
    opened.pageErrors.push(e instanceof Error ? e.message : String(e));
  });
  page.on('request', (r) => {
    opened.requests.push(r.url());
  });
  page.on('requestfailed', (r) => {
    opened.failedRequests.push({ url: r.url(), error: r.failure()?.errorText ?? 'unknown' });
  });
  // A binding and a listener added before any of the page's own code: neither is subject to the
  // page's CSP, so they report its violations even when the page may run no script at all.
  await page.exposeFunction(CSP_BINDING, (v: RecordedCspViolation) => {
    opened.cspViolations.push(v);
  });
  // As source text: the tests are type-checked without the DOM library.
  await page.evaluateOnNewDocument(
    `document.addEventListener('securitypolicyviolation', (e) => window.${CSP_BINDING}({ directive: e.effectiveDirective, blockedURI: e.blockedURI, sample: e.sample }));`,
  );
  opened.response = await page.goto(url, { waitUntil: 'load', ...options });
  return opened;
}

/** The requests not to `origin` (e.g. 'http://127.0.0.1:9191'); data: and blob: URLs are local. */
export function outsideOrigin(requests: string[], origin: string): string[] {
  return requests.filter((u) => !(u.startsWith('data:') || u.startsWith('blob:') || u === 'about:blank' || new URL(u).origin === origin));
}

/** Writes a full-page PNG of `page` to test-artifacts/screenshots/NAME.png; returns its path. */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name.replace(/[^\w.-]+/g, '-')}.png`);
  await page.screenshot({ path: file as `${string}.png`, fullPage: true });
  return file;
}

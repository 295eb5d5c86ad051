/**
 * The browser harness is honest (test/helpers/browser.ts; issue 15). A tiny server on loopback
 * serves one body, with markup an attacker would inject (an inline script, an img onerror
 * handler) next to a same-origin script and an image from another origin, twice: under a strict
 * CSP, where the test sees no dialog, the same-origin script's console message, and the CSP
 * refusals; and without a CSP, where it sees both dialogs, so a test that finds none is not
 * fooled by a listener that hears nothing. A screenshot is a PNG in test-artifacts/screenshots.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'puppeteer-core';
import { describeBrowser, launchBrowser, type OpenedPage, openPage, outsideOrigin, saveScreenshot } from '../helpers/browser';

const CSP = "default-src 'self'; script-src 'self'";

function body(other: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>harness</title>
<script src="/same-origin.js"></script></head>
<body><h1>Browser harness</h1>
<p>An injected script: <script>alert(1)</script></p>
<p>An injected handler: <img src=x onerror=alert(2)></p>
<p>Another origin: <img src="${other}/pixel.png" alt="pixel"></p>
</body></html>`;
}

/** Polls `check` until it holds or `ms` pass (the CSP event is queued after the refusal). */
async function eventually(check: () => boolean, ms = 2000): Promise<void> {
  for (const end = Date.now() + ms; !check() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 25));
}

describeBrowser('browser harness (chromium via puppeteer-core)', () => {
  let server: http.Server; // the page's origin
  let otherServer: http.Server; // another origin (another port), serving the same
  let origin: string;
  let other: string;
  let browser: Browser;
  const opened: OpenedPage[] = [];

  beforeAll(async () => {
    const handler: http.RequestListener = (req, res) => {
      const url = req.url ?? '/';
      if (url === '/same-origin.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' }).end("console.log('same-origin script ran');");
      } else if (url === '/csp' || url === '/no-csp') {
        const headers: http.OutgoingHttpHeaders = { 'content-type': 'text/html; charset=utf-8' };
        if (url === '/csp') headers['content-security-policy'] = CSP;
        res.writeHead(200, headers).end(body(other));
      } else {
        res.writeHead(url === '/pixel.png' ? 204 : 404).end();
      }
    };
    const listen = async (s: http.Server): Promise<string> => {
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    };
    server = http.createServer(handler);
    otherServer = http.createServer(handler);
    origin = await listen(server);
    other = await listen(otherServer);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    for (const o of opened) await o.page.close().catch(() => {});
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
    await new Promise((resolve) => otherServer?.close(resolve));
  });

  test('under a strict CSP no injected script runs; the same-origin script does, and the refusals are reported', async () => {
    const o = await openPage(browser, `${origin}/csp`);
    opened.push(o);
    expect(o.response?.headers()['content-security-policy']).toBe(CSP);
    await eventually(() => o.cspViolations.length >= 3);
    expect(o.dialogs).toEqual([]);
    expect(o.pageErrors).toEqual([]);
    expect(o.consoleMessages).toContainEqual(expect.objectContaining({ type: 'log', text: 'same-origin script ran' }));
    // Chromium's own refusal messages, as console errors, and the securitypolicyviolation events.
    const refusals = o.consoleMessages.filter((m) => m.type === 'error' && m.text.includes('Content Security Policy'));
    expect(refusals.length).toBeGreaterThanOrEqual(2);
    expect(o.cspViolations).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ directive: 'script-src-elem', blockedURI: 'inline' }),
        expect.objectContaining({ directive: 'script-src-attr', blockedURI: 'inline' }),
        expect.objectContaining({ directive: 'img-src', blockedURI: `${other}/pixel.png` }),
      ]),
    );
    // The recorder sees every request the page made, the refused one too, and knows it failed.
    expect(o.requests).toEqual(expect.arrayContaining([`${origin}/csp`, `${origin}/same-origin.js`, `${origin}/x`]));
    expect(outsideOrigin(o.requests, origin)).toEqual([`${other}/pixel.png`]);
    expect(o.failedRequests).toEqual([{ url: `${other}/pixel.png`, error: 'csp' }]);
    expect(await o.page.$eval('h1', (h) => h.textContent)).toBe('Browser harness');
  });

  test('without a CSP the same markup runs: the dialog listener hears both alerts, and the other origin is fetched', async () => {
    const o = await openPage(browser, `${origin}/no-csp`);
    opened.push(o);
    await eventually(() => o.dialogs.length >= 2);
    expect(o.dialogs).toEqual(
      expect.arrayContaining([
        { type: 'alert', message: '1' },
        { type: 'alert', message: '2' },
      ]),
    );
    expect(o.dialogs).toHaveLength(2);
    expect(o.cspViolations).toEqual([]);
    expect(outsideOrigin(o.requests, origin)).toEqual([`${other}/pixel.png`]);
    expect(o.failedRequests).toEqual([]);
    expect(o.consoleMessages).toContainEqual(expect.objectContaining({ type: 'log', text: 'same-origin script ran' }));
  });

  test('a screenshot is a PNG under test-artifacts/screenshots', async () => {
    const o = await openPage(browser, `${origin}/csp`);
    opened.push(o);
    const file = await saveScreenshot(o.page, 'browser-smoke');
    expect(file).toMatch(/test-artifacts\/screenshots\/browser-smoke\.png$/);
    const png = readFileSync(file);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.toString('latin1', 12, 16)).toBe('IHDR');
    expect(png.readUInt32BE(16)).toBe(1280); // the viewport's width
    expect(png.length).toBeGreaterThan(1000);
  });
});

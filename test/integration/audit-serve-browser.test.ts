/**
 * The auditor's view in a real browser (Debian's chromium through puppeteer-core): on a trail a
 * real gateway wrote with attacker-controlled text in it, every view renders under the strict CSP
 * with no dialog, no page error, no CSP refusal and nothing fetched from another origin; the
 * charts are drawn; the filter form narrows the timeline to what `audit query` selects; a
 * tampered copy turns the banner red with the first bad seq, and its export still works. A
 * screenshot of each view goes to test-artifacts/screenshots/.
 */
import type { Browser } from 'puppeteer-core';
import { runQuery } from '../../src/audit/offline/query';
import { serveTrail, type TrailServer } from '../../src/audit/viewer/server';
import { hostileTrail, tamperedCopy } from '../helpers/audit-view';
import { describeBrowser, launchBrowser, type OpenedPage, openPage, outsideOrigin, saveScreenshot } from '../helpers/browser';

describeBrowser("the auditor's view in a real browser", () => {
  let browser: Browser;
  let trail: { dir: string; pub: string };
  let server: TrailServer;
  const opened: OpenedPage[] = [];
  const open = async (p: string) => {
    const o = await openPage(browser, `${server.url}${p}`);
    opened.push(o);
    return o;
  };
  /** Nothing ran that a record could have injected, nothing was refused, nothing came from elsewhere. */
  const inert = async (o: OpenedPage) => {
    await new Promise((r) => setTimeout(r, 150)); // CSP reports arrive just after load
    expect(o.dialogs).toEqual([]);
    expect(o.pageErrors).toEqual([]);
    expect(o.cspViolations).toEqual([]);
    expect(outsideOrigin(o.requests, server.url)).toEqual([]);
  };

  beforeAll(async () => {
    trail = await hostileTrail();
    server = await serveTrail({ trail: trail.dir, keys: [], host: '127.0.0.1', port: 0, token: null });
    await server.ready;
    browser = await launchBrowser();
  }, 60_000);
  afterAll(async () => {
    for (const o of opened) await o.page.close().catch(() => undefined);
    await browser?.close();
    await server?.close();
  });

  test('G33: the timeline: a green banner, the records as inert text, a screenshot', async () => {
    const o = await open('/timeline');
    expect(o.response?.status()).toBe(200);
    expect(await o.page.$eval('#verdict', (e) => `${e.className} ${e.textContent}`)).toMatch(/^banner verified Verified\. \d+ records/);
    // The hostile reason is there, as text: no element was made of it.
    const text = await o.page.$eval('#timeline', (e) => e.textContent ?? '');
    expect(text).toContain('<img src=x onerror=alert(3)><svg onload=alert(4)></svg>');
    expect(await o.page.$$eval('main img, main svg, main style, main script', (els) => els.length)).toBe(0);
    await inert(o);
    await saveScreenshot(o.page, 'timeline');
  });

  test('denies: charts drawn from the counts, by reason and by tool', async () => {
    const o = await open('/denies');
    expect(await o.page.$$eval('canvas.chart', (els) => els.length)).toBe(3);
    // Chart.js drew into each canvas (a non-blank pixel buffer).
    const drawn = await o.page.evaluate(`[...document.querySelectorAll('canvas.chart')].map((c) => c.toDataURL().length > 2000)`);
    expect(drawn).toEqual([true, true, true]);
    expect(await o.page.$eval('#by-reason', (e) => e.textContent ?? '')).toContain('<svg onload=alert(4)>');
    await inert(o);
    await saveScreenshot(o.page, 'denies');
  });

  test('credentials, policy revisions and a decision: each renders, inert', async () => {
    for (const [p, name, selector] of [
      ['/credentials', 'credentials', '#by-credential'],
      ['/policies', 'policies', '#revisions'],
    ] as const) {
      const o = await open(p);
      expect(await o.page.$eval(selector, (e) => e.textContent ?? '')).not.toBe('');
      await inert(o);
      await saveScreenshot(o.page, name);
    }
    const t = await open('/timeline?decision=deny');
    const href = await t.page.$eval('#timeline tbody a', (a) => a.getAttribute('href') ?? '');
    const d = await open(href);
    expect(await d.page.$eval('#position', (e) => e.textContent ?? '')).toMatch(/covered by checkpoint\s*seq \d+/);
    expect(await d.page.$eval('#record', (e) => e.textContent ?? '')).toContain('<img src=x onerror=alert(3)>');
    await inert(d);
    await saveScreenshot(d.page, 'decision');
  });

  test('G33: the filter form narrows the timeline to exactly what audit query selects', async () => {
    const o = await open('/timeline');
    await o.page.type('input[name="route"]', 'up');
    await o.page.select('select[name="decision"]', 'deny');
    await Promise.all([o.page.waitForNavigation(), o.page.click('#filters button[type="submit"]')]);
    expect(o.page.url()).toMatch(/route=up/);
    const shown = await o.page.$$eval('#timeline tbody a', (as) => as.map((a) => (a.getAttribute('href') ?? '').split('/').pop()));
    const want: string[] = [];
    runQuery(trail.dir, { types: ['decision'], routes: ['up'], decision: 'deny' }, {}, (hit) => want.push(String(hit.record.decision_id)));
    expect(want.length).toBeGreaterThan(0);
    expect(shown).toEqual(want);
    await inert(o);
  });

  test('G33: a byte changed in a middle record: the banner turns red and names the first bad seq; the export of that view still works', async () => {
    const { dir: copy, seq } = tamperedCopy(trail.dir, '"route":"up"', '"route":"uP"');
    const tampered = await serveTrail({ trail: copy, keys: [], host: '127.0.0.1', port: 0, token: null });
    await tampered.ready;
    try {
      const o = await openPage(browser, `${tampered.url}/timeline?decision=deny`);
      opened.push(o);
      const banner = await o.page.$eval('#verdict', (e) => ({ cls: e.className, seq: e.getAttribute('data-first-bad-seq'), text: e.textContent ?? '' }));
      expect(banner.cls).toBe('banner tampered');
      expect(banner.seq).toBe(String(seq + 1));
      expect(banner.text).toContain(`(seq ${seq}): that record was modified`);
      const exported = (await o.page.evaluate(
        `fetch(document.querySelector('a.export[data-format="jsonl"]').getAttribute('href')).then(async (r) => [r.status, (await r.text()).trim().split('\\n').length])`,
      )) as [number, number];
      expect(exported[0]).toBe(200);
      expect(exported[1]).toBeGreaterThan(3);
      await saveScreenshot(o.page, 'tampered');
    } finally {
      await tampered.close();
    }
  });
});

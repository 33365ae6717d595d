// dashboard.mjs - the dashboard in a real browser: headless Chromium
// (Debian's) driven by puppeteer-core (tests/package.json). Run by
// tests/e2e/test_ui.c with one argument, a JSON file saying what the test
// made:
//   {base, screenshots, chromium, runs: [id...],
//    done: {run, steps: {id: state}}, live: {run, step, file},
//    chart: {run, title, points}, lineage: {artifact, links: [hash...]}}
// Prints one line per check and exits 1 at the first that fails.
import fs from 'node:fs';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const errors = [];
let failed = false;

const t0 = Date.now();
function check(ok, what) {
  console.log((ok ? 'ok   ' : 'FAIL ') + what + ` (${Date.now() - t0} ms)`);
  if (!ok) failed = true;
  return ok;
}

const browser = await puppeteer.launch({
  executablePath: spec.chromium || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
});

try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 800 });
  page.on('console', (m) => { if (m.type() === 'error') errors.push(page.url() + ': ' + m.text()); });
  page.on('pageerror', (e) => errors.push(page.url() + ': ' + e.message));
  page.on('requestfailed', (r) => { if (!r.url().endsWith('/events')) errors.push('request failed: ' + r.url()); });

  async function open(hash) {
    await page.goto(spec.base + '/' + hash, { waitUntil: 'load' });
    if (hash) await page.evaluate((h) => { if (location.hash !== h) location.hash = h; }, hash);
    await page.waitForFunction((h) => document.getElementById('main').dataset.ready === (h || '#/runs'), { timeout: 20000 }, hash);
  }
  async function shot(name) {
    await page.screenshot({ path: path.join(spec.screenshots, name + '.png'), fullPage: true });
  }

  // The runs page lists every run the test made.
  await open('#/runs');
  const listed = await page.$$eval('#runs tr[data-run]', (rows) => rows.map((r) => r.dataset.run));
  for (const id of spec.runs) check(listed.includes(id), 'runs page lists run ' + id);
  await shot('runs');

  // A finished run: every step of its DAG with its state, in the table and the graph.
  await open('#/run/' + spec.done.run);
  for (const [step, state] of Object.entries(spec.done.steps)) {
    const row = await page.$eval(`#steps tr[data-step="${step}"]`, (r) => r.dataset.state).catch(() => null);
    check(row === state, `run page: step ${step} is ${state} in the table (got ${row})`);
    const node = await page.$eval(`#graph g.node[id="step-${step}"]`, (g) => g.getAttribute('class') + '|' + g.textContent).catch(() => '');
    check(node.includes(state) && node.includes(step), `run page: the DAG's node ${step} says ${state}`);
  }
  // Keyboard: every node of the graph is a link, and Tab reaches them.
  const links = await page.$$eval('#graph g.node a', (as) => as.length);
  check(links === Object.keys(spec.done.steps).length, `every graph node is a link (${links})`);
  let reached = false;
  for (let i = 0; i < 40 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => !!document.activeElement && !!document.activeElement.closest('#graph'));
  }
  check(reached, 'Tab reaches the graph');
  await shot('run');

  // A narrow screen: one column, nothing wider than the screen.
  await page.setViewport({ width: 375, height: 740 });
  await open('#/runs');
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  check(wide <= 375, `runs page fits a 375 px screen (${wide} px)`);
  await shot('runs-narrow');
  await page.setViewport({ width: 1100, height: 800 });

  // A step's details: its log is shown.
  const firstStep = Object.keys(spec.done.steps)[0];
  await open('#/run/' + spec.done.run + '/step/' + firstStep);
  check(await page.$('#log') !== null, 'a step page shows its log');
  await shot('step');

  // The loss chart has one point per metric recorded.
  await open('#/run/' + spec.chart.run);
  const points = await page.$eval(`figure.chart[data-title="${spec.chart.title}"]`, (f) => Number(f.dataset.points)).catch(() => -1);
  check(points === spec.chart.points, `chart ${spec.chart.title} has ${spec.chart.points} points (got ${points})`);
  check(await page.$(`figure.chart[data-title="${spec.chart.title}"] canvas`) !== null, 'the chart is drawn by uPlot');
  await shot('chart');

  // The lineage page links the artifacts.
  await open('#/lineage/' + spec.lineage.artifact);
  const hrefs = await page.$$eval('#lineage-nodes a', (as) => as.map((a) => a.getAttribute('href')));
  for (const h of spec.lineage.links) check(hrefs.includes('#/artifact/' + h), 'lineage links artifact ' + h.slice(0, 12));
  check(await page.$('#lineage-graph svg') !== null, 'lineage graph drawn');
  await shot('lineage');

  // An artifact page and the other sections load.
  await open('#/artifact/' + spec.lineage.artifact);
  await shot('artifact');
  for (const p of ['#/metrics?name=loss', '#/models', '#/traces', '#/schedules']) {
    await open(p);
    check((await page.$('.error')) === null, p + ' loads without an error');
  }
  await shot('metrics');

  // A running pipeline's page follows it without a reload.
  await open('#/run/' + spec.live.run);
  await page.evaluate(() => { window.notReloaded = true; });
  const before = await page.$eval(`#steps tr[data-step="${spec.live.step}"]`, (r) => r.dataset.state).catch(() => null);
  check(before === 'running' || before === 'waiting', `live: step ${spec.live.step} is ${before} first`);
  await shot('live-before');
  fs.writeFileSync(spec.live.file, 'go\n');
  await page.waitForFunction((s) => {
    const r = document.querySelector(`#steps tr[data-step="${s}"]`);
    return r && r.dataset.state === 'done';
  }, { timeout: 30000 }, spec.live.step).catch(() => {});
  const after = await page.$eval(`#steps tr[data-step="${spec.live.step}"]`, (r) => r.dataset.state).catch(() => null);
  check(after === 'done', `live: step ${spec.live.step} turns done without a reload (got ${after})`);
  check(await page.evaluate(() => window.notReloaded === true), 'live: the page was not reloaded');
  await shot('live-after');

  check(errors.length === 0, 'no console errors' + (errors.length ? ': ' + errors.join('; ') : ''));
} catch (e) {
  check(false, 'browser test: ' + e.message);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);

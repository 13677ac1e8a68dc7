// The admin dashboard in Chromium: an admin sees the figures and the MoviesAdded chart move when
// a movie is added, an alert when one is removed, manages a notification subscription (a bad
// SMS number answered at its field), grants a role; keyboard reach, a phone-sized screen, and a
// plain user kept out. Screenshots of each state.
import { apiToken, assert, config, main, signInWithPassword, waitForHeading, waitForText } from './lib/harness.mjs';
import { addMovie, call, noSidewaysScroll, phonePage, registered, tabUntil } from './lib/ops.mjs';

// Metrics reach the chart through the pipeline (and CloudWatch on moto): generous.
const CHART_WAIT_MS = 90000;

const chartValue = (page, metric, key) => page.locator(`#chart-${metric}`).getAttribute(`data-${key}`).then(Number);

async function waitForChart(page, metric, above) {
  const deadline = Date.now() + CHART_WAIT_MS;
  let total = await chartValue(page, metric, 'total');
  while (total <= above && Date.now() < deadline) {
    await page.waitForTimeout(500);
    total = await chartValue(page, metric, 'total');
  }
  assert(total > above, `the ${metric} chart's total went above ${above} (still ${total})`);
  return total;
}

await main('admin', async (run) => {
  const suffix = Date.now().toString(36);
  const page = await run.newPage('admin');
  const writerToken = await registered(`writer-${suffix}`);
  let before;
  let movieId;

  await run.step('the admin signs in and sees the dashboard', async () => {
    await signInWithPassword(page, config.adminUser);
    await page.getByRole('link', { name: 'Admin' }).click();
    await waitForHeading(page, 'Admin dashboard');
    await waitForText(page.locator('#dashboard-refreshed'), 'Updated');
    assert(await page.locator('#charts figure.chart').count() === 8, 'a chart for each of the eight metrics');
    await waitForText(page.locator('#projections'), 'read-models');
    await waitForText(page.locator('#dead-letters'), /dead-letter/i);
    const users = Number(await page.locator('#stats [data-stat="users"]').textContent());
    assert(users >= 3, `the users figure counts the fixture accounts (${users})`);
    const label = await page.locator('#chart-MoviesAdded svg').getAttribute('aria-labelledby');
    assert(label.split(' ').length === 2, 'the chart is labelled by its title and its summary');
    before = await chartValue(page, 'MoviesAdded', 'total');
    await noSidewaysScroll(page);
    await run.screenshot(page, 'dashboard');
  });

  await run.step('a movie is added and the MoviesAdded chart moves', async () => {
    ({ id: movieId } = await addMovie(writerToken, `Chart mover ${suffix}`));
    const after = await waitForChart(page, 'MoviesAdded', before);
    const summary = await page.locator('#chart-MoviesAdded .chart-summary').textContent();
    assert(summary.includes(`last hour ${after}`), `the summary says the new total: ${summary}`);
    assert(await chartValue(page, 'MoviesAdded', 'latest') >= 1, 'this minute has the new movie');
    const hidden = await page.locator('#chart-MoviesAdded table').textContent();
    assert(/Movies added per minute/.test(hidden), `the text alternative table is there: ${hidden}`);
    await waitForText(page.locator('#stats [data-stat="moviesAddedToday"]'), /[1-9]/);
    await run.screenshot(page, 'dashboard-chart-moved');
  });

  await run.step('removing the movie raises an alert in the feed', async () => {
    await call(writerToken, 'DELETE', `/api/movies/${movieId}`);
    await waitForText(page.locator('#alerts'), `movie removed: Chart mover ${suffix}`, CHART_WAIT_MS);
    await run.screenshot(page, 'dashboard-alert');
  });

  await run.step('a bad SMS number is answered at its field', async () => {
    const form = page.locator('#subscribe-form');
    await form.getByLabel('Topic').selectOption('alerts');
    await form.getByLabel('Protocol').selectOption('sms');
    await form.getByLabel('Endpoint').fill('12345');
    await form.getByRole('button', { name: 'Subscribe' }).click();
    const endpoint = form.getByLabel('Endpoint');
    await page.waitForFunction(() => document.activeElement?.getAttribute('aria-invalid') === 'true');
    const describedBy = (await endpoint.getAttribute('aria-describedby')).split(' ');
    await waitForText(page.locator(`[id="${describedBy.at(-1)}"]`), 'E.164');
    await run.screenshot(page, 'subscription-bad-sms');
  });

  const email = `ops-${suffix}@example.com`;
  await run.step('a subscription is added, listed and removed', async () => {
    const form = page.locator('#subscribe-form');
    await form.getByLabel('Protocol').selectOption('email');
    await form.getByLabel('Endpoint').fill(email);
    await form.getByRole('button', { name: 'Subscribe' }).click();
    await waitForText(page.locator('#subscriptions'), email);
    assert(await form.getByLabel('Endpoint').getAttribute('aria-invalid') === null, 'the error is cleared');
    await run.screenshot(page, 'subscription-added');
    await page.getByRole('button', { name: `Remove the email subscription of ${email} to alerts` }).click();
    await page.waitForFunction((gone) => !document.querySelector('#subscriptions')?.textContent.includes(gone), email);
    await waitForText(page.locator('main'), `Removed ${email} from alerts.`);
  });

  await run.step('a role is granted by username; an unknown name is answered at the field', async () => {
    const form = page.locator('#role-form');
    await form.getByLabel('Username').fill(`nobody-${suffix}`);
    await form.getByRole('button', { name: 'Grant role' }).click();
    await page.waitForFunction(() => document.activeElement?.getAttribute('aria-invalid') === 'true');
    await form.getByLabel('Username').fill(`writer-${suffix}`);
    await form.getByLabel('Role').selectOption('auditor');
    await form.getByRole('button', { name: 'Grant role' }).click();
    await waitForText(page.locator('#role-status'), `Granted the auditor role to writer-${suffix}.`);
    const me = await fetch(`${config.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await apiToken(`writer-${suffix}`)}` },
      body: JSON.stringify({ query: '{ me { roles } }' }),
    }).then((r) => r.json());
    assert(me.data.me.roles.includes('auditor'), `the writer is an auditor now: ${JSON.stringify(me)}`);
    await run.screenshot(page, 'role-granted');
  });

  await run.step('the keyboard alone reaches the forms', async () => {
    const presses = await tabUntil(page, '#role-form button[type="submit"]', 120);
    assert(presses > 3, 'several controls come before the last one');
    await page.locator('#subscribe-form').getByLabel('Endpoint').focus();
    await page.keyboard.type(`kb-${suffix}@example.com`);
    await page.keyboard.press('Enter');
    await waitForText(page.locator('#subscriptions'), `kb-${suffix}@example.com`);
  });

  await run.step('a phone-sized screen', async () => {
    const phone = await phonePage(run, 'admin-phone', config.adminUser, '#/admin', 'Admin dashboard');
    await waitForText(phone.locator('#dashboard-refreshed'), 'Updated');
    await noSidewaysScroll(phone);
    await run.screenshot(phone, 'phone-dashboard');
  });

  await run.step('a plain user is not allowed in', async () => {
    const reader = await run.newPage('plain-user');
    await registered(`plain-${suffix}`);
    await signInWithPassword(reader, `plain-${suffix}`);
    await reader.goto('/#/admin');
    await waitForHeading(reader, 'Not allowed');
    assert(await reader.locator('#charts, #stats, #subscriptions').count() === 0, 'no dashboard data shown');
    assert(await reader.getByRole('link', { name: 'Admin' }).count() === 0, 'no Admin link in the menu');
    await run.screenshot(reader, 'admin-not-allowed');
  });
});

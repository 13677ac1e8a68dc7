// The auditor's pages in Chromium: the event log with a new movie's MovieAdded (a hostile
// title shown as text in the payload), filters by aggregate, a live event, the chain indicator,
// ledger verification (whole and incremental), JSON Lines and CSV downloads, the movie's
// timeline with its state at version 1 and 2 and at a time before it existed; keyboard reach,
// a phone-sized screen, and a plain user kept out. Screenshots of each state.
import { readFile } from 'node:fs/promises';
import { assert, config, main, signInWithPassword, waitForHeading, waitForText } from './lib/harness.mjs';
import { addMovie, call, noSidewaysScroll, phonePage, registered, tabUntil } from './lib/ops.mjs';

await main('audit', async (run) => {
  const suffix = Date.now().toString(36);
  const title = `The Conversation <img src=x onerror=alert(1)> ${suffix}`;
  const retitled = `The Conversation, restored ${suffix}`;
  const writer = await registered(`writer-${suffix}`);
  const { id: movieId } = await addMovie(writer, title);
  await call(writer, 'PATCH', `/api/movies/${movieId}`, { title: retitled }, { 'if-match': '"1"' });
  const page = await run.newPage('auditor');

  await run.step('the auditor signs in and sees the events, the movie\'s MovieAdded among them', async () => {
    await signInWithPassword(page, config.auditorUser);
    await page.getByRole('link', { name: 'Audit' }).click();
    await waitForHeading(page, 'Audit');
    const added = page.locator('#events tr[data-event-type="MovieAdded"]', { hasText: movieId });
    await added.waitFor();
    assert(await page.locator('#events tr[data-event-type="UserRegistered"]').count() >= 3, 'the fixture users\' registrations are listed');
    await noSidewaysScroll(page);
    await run.screenshot(page, 'events');
  });

  await run.step('an event expands to its payload and metadata, as text', async () => {
    const added = page.locator('#events tr[data-event-type="MovieAdded"]', { hasText: movieId });
    const toggle = added.getByRole('button');
    await toggle.click();
    assert(await toggle.getAttribute('aria-expanded') === 'true', 'the toggle says it is expanded');
    const details = page.locator(`[id="${await toggle.getAttribute('aria-controls')}"]`);
    await waitForText(details.locator('pre.payload'), title);
    await waitForText(details.locator('pre.metadata'), 'correlation');
    assert(await page.locator('#events img').count() === 0, 'no element was made from the title');
    const hash = await details.locator('dd code').first().textContent();
    assert(/^[0-9a-f]{64}$/.test(hash), `the hash is shown: ${hash}`);
    await run.screenshot(page, 'event-expanded');
  });

  await run.step('a filter by aggregate shows the movie\'s stream, chained', async () => {
    await page.getByLabel('Aggregate id').fill(movieId);
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/aggregateId=/);
    await waitForText(page.locator('#event-count'), 'Showing 2 events');
    const rows = page.locator('#events tbody tr[data-position]');
    assert(await rows.count() === 2, 'only the movie\'s two events');
    assert(await rows.nth(0).locator('td.chain').getAttribute('data-chain') === 'start', 'the first starts the stream');
    assert(await rows.nth(1).locator('td.chain').getAttribute('data-chain') === 'linked', 'the second links to the first');
    await run.screenshot(page, 'events-filtered');
  });

  await run.step('a new event of the movie appears live', async () => {
    await call(writer, 'PATCH', `/api/movies/${movieId}`, { year: 1975 }, { 'if-match': '"2"' });
    await waitForText(page.locator('#event-count'), 'Showing 3 events');
    const last = page.locator('#events tbody tr[data-position]').nth(2);
    assert(await last.getAttribute('data-event-type') === 'MovieDetailsUpdated', 'the update is listed');
    assert(await last.locator('td.chain').getAttribute('data-chain') === 'linked', 'and chained');
  });

  await run.step('the ledger verifies intact, whole and incremental', async () => {
    await page.getByRole('button', { name: 'Verify the whole ledger' }).click();
    await waitForText(page.locator('#ledger-verdict'), /^Intact: \d+ events checked\.$/);
    assert(await page.locator('#ledger-result').getAttribute('data-intact') === 'true', 'data-intact is true');
    await run.screenshot(page, 'ledger-intact');
    await page.getByRole('button', { name: 'Verify since the last checkpoint' }).click();
    await waitForText(page.locator('#ledger-verdict'), 'since the last checkpoint');
  });

  await run.step('the filtered log downloads as JSON Lines and CSV', async () => {
    const [jsonl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download JSON Lines' }).click()]);
    assert(/^marquee-events-\d+-\d+\.jsonl$/.test(jsonl.suggestedFilename()), `file name ${jsonl.suggestedFilename()}`);
    const lines = (await readFile(await jsonl.path(), 'utf8')).trim().split('\n').map((line) => JSON.parse(line));
    assert(lines.length === 3, `three events exported, not ${lines.length}`);
    assert(lines[0].eventType === 'MovieAdded' && lines[0].payload.title === title, 'the first line is the MovieAdded with its title');
    assert(lines.every((e) => e.aggregateId === movieId && e.hash), 'each line is the movie\'s, with its hash');
    const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download CSV' }).click()]);
    assert(csv.suggestedFilename().endsWith('.csv'), `file name ${csv.suggestedFilename()}`);
    const rows = (await readFile(await csv.path(), 'utf8')).trim().split('\r\n');
    assert(rows[0] === 'position,aggregateType,aggregateId,sequence,eventType,schemaVersion,payload,metadata,recordedAt,prevHash,hash', `the header: ${rows[0]}`);
    assert(rows.length === 4, `a header and three rows, not ${rows.length}`);
    assert(rows[1].includes(',MovieAdded,') && rows[1].includes(movieId), `the first row is the MovieAdded: ${rows[1]}`);
    await waitForText(page.locator('#export-status'), 'Exported 3 events');
  });

  await run.step('the movie\'s timeline shows its state at version 1, 2 and before it existed', async () => {
    await page.getByRole('link', { name: `History of movie ${movieId}` }).first().click();
    await waitForHeading(page, `History of ${retitled}`);
    assert(await page.locator('#timeline li').count() === 3, 'three events on the timeline');
    await waitForText(page.locator('#state [data-field="version"]'), '3');
    await run.screenshot(page, 'timeline-latest');
    await page.getByRole('button', { name: 'State at version 1' }).click();
    await waitForText(page.locator('#state-heading'), 'at version 1');
    assert(await page.locator('#state [data-field="title"]').textContent() === title, 'version 1 has the first title, as text');
    assert(await page.locator('main img').count() === 0, 'no element was made from the title');
    assert(await page.getByRole('button', { name: 'State at version 1' }).getAttribute('aria-pressed') === 'true', 'the picked point is marked');
    await run.screenshot(page, 'timeline-version-1');
    await page.getByRole('button', { name: 'State at version 2' }).click();
    await waitForText(page.locator('#state [data-field="title"]'), retitled);
    assert(await page.locator('#state [data-field="year"]').textContent() === '1974', 'version 2 is before the year changed');
    await page.getByLabel('Date and time').fill('2001-01-01T00:00:00');
    await page.getByRole('button', { name: 'Show the state then' }).click();
    await waitForText(page.locator('#state'), 'did not exist yet');
  });

  await run.step('the keyboard alone reaches the timeline and the log', async () => {
    await tabUntil(page, '#timeline button[data-version="2"]');
    await page.keyboard.press('Enter');
    await waitForText(page.locator('#state [data-field="title"]'), retitled);
    await page.goto('/#/audit');
    await waitForHeading(page, 'Audit');
    await page.locator('#events tbody tr').first().waitFor();
    await tabUntil(page, '#export-csv');
  });

  await run.step('phone-sized screens', async () => {
    const phone = await phonePage(run, 'auditor-phone', config.auditorUser, '#/audit', 'Audit');
    await phone.locator('#events tbody tr').first().waitFor();
    await noSidewaysScroll(phone);
    await run.screenshot(phone, 'phone-audit');
    await phone.goto(`/#/audit/movies/${movieId}`);
    await waitForHeading(phone, `History of ${retitled}`);
    await waitForText(phone.locator('#state [data-field="version"]'), '3');
    await noSidewaysScroll(phone);
    await run.screenshot(phone, 'phone-timeline');
  });

  await run.step('a plain user is not allowed in', async () => {
    const reader = await run.newPage('plain-user');
    await registered(`plain-${suffix}`);
    await signInWithPassword(reader, `plain-${suffix}`);
    for (const hash of ['#/audit', `#/audit/movies/${movieId}`]) {
      await reader.goto(`/${hash}`);
      await waitForHeading(reader, 'Not allowed');
      assert(await reader.locator('#events, #timeline, #ledger-result').count() === 0, `no audit data at ${hash}`);
    }
    await run.screenshot(reader, 'audit-not-allowed');
  });
});

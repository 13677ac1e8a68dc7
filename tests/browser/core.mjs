// The core of the web UI in Chromium: register, add a passkey (virtual authenticator, user
// verification on), sign out, sign in with the passkey, add a movie with a poster (file
// chooser) while a second browser sees it appear live, a hostile title shown as text (poster
// dropped), a validation message at its field, a version conflict explained, keyboard-only
// reach of the main controls, and a phone-sized screen. Screenshots of each page, and axe-core's
// WCAG A/AA rules on each.
import {
  accessible, apiToken, assert, config, main, png, signedInAndOnTheWay, signInWithPassword, waitForHeading,
  waitForText,
} from './lib/harness.mjs';

const HOSTILE_TITLE = '<script>alert(1)</script>';

await main('core', async (run) => {
  const suffix = Date.now().toString(36);
  const username = `reader-${suffix}`;
  const title = `The Conversation ${suffix}`;
  const page = await run.newPage('reader');
  let movieUrl;

  await run.step('the catalogue opens, anonymous', async () => {
    await page.goto('/');
    await waitForHeading(page, 'Catalogue');
    await page.getByRole('link', { name: 'Register' }).waitFor();
    await run.screenshot(page, 'catalogue-anonymous');
    await accessible(page, 'catalogue-anonymous');
  });

  await run.step('register', async () => {
    await page.getByRole('link', { name: 'Register' }).click();
    await waitForHeading(page, 'Register');
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Email').fill(`${username}@example.com`);
    await page.getByLabel('Password').fill(config.password);
    await run.screenshot(page, 'register');
    await accessible(page, 'register');
    await page.getByRole('button', { name: 'Create account' }).click();
    await waitForHeading(page, 'Your account');
    await waitForText(page.locator('.signed-in-as'), username);
    await waitForText(page.locator('#passkey-count'), 'You have 0 passkeys.');
  });

  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });

  await run.step('add a passkey with the virtual authenticator (user verification on)', async () => {
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await waitForText(page.locator('#passkey-count'), 'You have 1 passkey.');
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert(credentials.length === 1, `the authenticator holds one credential, not ${credentials.length}`);
    await run.screenshot(page, 'account-with-passkey');
    await accessible(page, 'account-with-passkey');
  });

  await run.step('sign out', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('link', { name: 'Sign in' }).waitFor();
    assert(await page.locator('.signed-in-as').count() === 0, 'no one is shown signed in');
  });

  await run.step('sign in with the passkey', async () => {
    await page.getByRole('link', { name: 'Sign in' }).click();
    await waitForHeading(page, 'Sign in');
    await page.getByLabel('Username').fill(username);
    await run.screenshot(page, 'sign-in');
    await accessible(page, 'sign-in');
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await signedInAndOnTheWay(page, username);
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert(credentials[0].signCount >= 1, 'the authenticator signed');
    await page.goto('/#/account');
    await waitForHeading(page, 'Your account');
    await waitForText(page.locator('table'), 'passkey');
    await run.screenshot(page, 'account-sign-ins');
  });

  const watcher = await run.newPage('watcher');
  await run.step('a second browser watches the catalogue', async () => {
    await watcher.goto('/');
    await waitForHeading(watcher, 'Catalogue');
    await waitForText(watcher.locator('#live-status'), 'appear here as they happen');
    // Set once: still there at the end means the page never reloaded.
    await watcher.evaluate(() => { window.notReloaded = true; });
  });

  await run.step('add a movie with a poster (file chooser, preview, progress)', async () => {
    await page.getByRole('link', { name: 'Add a movie' }).click();
    await waitForHeading(page, 'Add a movie');
    await page.getByLabel('Title').fill(title);
    await page.getByLabel('Year').fill('1974');
    await page.getByLabel('Director').fill('Francis Ford Coppola');
    await page.getByLabel('Genres').fill('Thriller, Drama');
    await page.getByLabel('Description').fill('A surveillance expert hears too much.');
    await page.getByLabel('Choose a poster image').setInputFiles({ name: 'poster.png', mimeType: 'image/png', buffer: await png(400, 600) });
    await page.locator('.poster-preview:not([hidden])').waitFor();
    await run.screenshot(page, 'add-movie');
    await accessible(page, 'add-movie');
    // Record every value the progress bar takes: the page moves on once the upload is done.
    await page.evaluate(() => {
      window.progressSeen = [];
      new MutationObserver(() => window.progressSeen.push(document.querySelector('#upload-progress')?.value))
        .observe(document.querySelector('#upload-progress'), { attributes: true, attributeFilter: ['value'] });
    });
    await page.getByRole('button', { name: 'Add movie' }).click();
    await waitForHeading(page, title);
    movieUrl = page.url();
    const seen = await page.evaluate(() => window.progressSeen);
    assert(seen.includes(100), `the progress bar reached 100 (saw ${JSON.stringify(seen)})`);
    const poster = page.locator('.movie-poster img');
    await poster.waitFor();
    await page.waitForFunction(() => document.querySelector('.movie-poster img')?.naturalWidth === 400);
    await run.screenshot(page, 'movie');
    await accessible(page, 'movie');
  });

  await run.step('the second browser sees it appear live, without a reload', async () => {
    const card = watcher.locator('#movie-grid li', { hasText: title });
    await card.waitFor();
    await watcher.waitForFunction(() => [...document.querySelectorAll('#movie-grid li img')].some((img) => img.naturalWidth > 0));
    assert(await watcher.evaluate(() => window.notReloaded === true), 'the watching page did not reload');
    await waitForText(watcher.locator('#announcer'), title);
    await run.screenshot(watcher, 'catalogue-live');
    await accessible(watcher, 'catalogue-live');
  });

  await run.step('a title holding <script> shows as text (poster dropped on the form)', async () => {
    await page.goto('/#/movies/new');
    await waitForHeading(page, 'Add a movie');
    await page.getByLabel('Title').fill(HOSTILE_TITLE);
    await page.getByLabel('Year').fill('1999');
    await page.getByLabel('Director').fill('<img src=x onerror=alert(2)>');
    const bytes = [...await png(300, 450, [30, 90, 200])];
    const transfer = await page.evaluateHandle((data) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(data)], 'dropped.png', { type: 'image/png' }));
      return dt;
    }, bytes);
    await page.dispatchEvent('#poster-drop', 'dragover', { dataTransfer: transfer });
    await page.dispatchEvent('#poster-drop', 'drop', { dataTransfer: transfer });
    await page.locator('.poster-preview:not([hidden])').waitFor();
    await page.getByRole('button', { name: 'Add movie' }).click();
    await waitForHeading(page, HOSTILE_TITLE);
    assert(await page.locator('main h1').textContent() === HOSTILE_TITLE, 'the heading is the title, as text');
    assert(await page.locator('main script, main img[src="x"]').count() === 0, 'no element was made from the title or director');
    await waitForText(page.locator('.facts'), '<img src=x onerror=alert(2)>');
    await run.screenshot(page, 'movie-hostile-title');
    const id = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
    await waitForText(watcher.locator(`#movie-grid li[data-movie-id="${id}"]`), HOSTILE_TITLE);
    assert(await watcher.locator('#movie-grid script').count() === 0, 'no script element in the grid');
  });

  await run.step('a validation message from the API shows at its field', async () => {
    await page.goto('/#/movies/new');
    await waitForHeading(page, 'Add a movie');
    await page.getByLabel('Title').fill('Too early');
    await page.getByLabel('Year').fill('1700');
    await page.getByLabel('Director').fill('Nobody');
    await page.getByRole('button', { name: 'Add movie' }).click();
    const year = page.getByLabel('Year');
    await page.waitForFunction(() => document.activeElement?.getAttribute('aria-invalid') === 'true');
    assert(await year.getAttribute('aria-invalid') === 'true', 'the year is marked invalid');
    const describedBy = (await year.getAttribute('aria-describedby')).split(' ');
    const message = await page.locator(`[id="${describedBy.at(-1)}"]`).textContent();
    assert(/year/i.test(message), `the year's message is the API's: ${message}`);
    assert(await year.evaluate((el) => el === document.activeElement), 'focus is on the year');
    await run.screenshot(page, 'validation');
    await accessible(page, 'validation');
  });

  await run.step('a version conflict is explained with the other change', async () => {
    await page.goto(`${movieUrl}/edit`);
    await waitForHeading(page, `Edit ${title}`);
    const id = decodeURIComponent(new URL(movieUrl).hash.split('/')[2]);
    // Someone else (the admin, over the API) changes the director meanwhile.
    const token = await apiToken(config.adminUser);
    const graph = await fetch(`${config.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'query($id: ID!) { movie(id: $id) { version } }', variables: { id } }),
    });
    const { version } = (await graph.json()).data.movie;
    const edited = await fetch(`${config.baseUrl}/api/movies/${id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'if-match': `"${version}"` },
      body: JSON.stringify({ director: 'Someone Else' }),
    });
    assert(edited.ok, `the other edit answered ${edited.status}`);
    await page.getByLabel('Title').fill(`${title} (director's cut)`);
    await page.getByRole('button', { name: 'Save changes' }).click();
    const conflict = page.locator('#conflict');
    await conflict.waitFor();
    await waitForText(conflict, 'Someone Else');
    await waitForText(conflict, `${title} (director's cut)`);
    assert(await page.evaluate(() => document.activeElement?.id === 'conflict-heading'), 'focus is on the explanation');
    await run.screenshot(page, 'version-conflict');
    await accessible(page, 'version-conflict');
    await page.getByRole('button', { name: 'Keep my changes on top of theirs' }).click();
    await page.getByRole('button', { name: 'Save changes' }).click();
    await waitForHeading(page, `${title} (director's cut)`);
    await waitForText(page.locator('.facts'), 'Someone Else');
  });

  await run.step('the keyboard alone reaches the main controls', async () => {
    await page.goto('/');
    await waitForHeading(page, 'Catalogue');
    await page.locator('#movie-grid li').first().waitFor();
    const reached = [];
    const focused = () => page.evaluate(() => {
      const el = document.activeElement;
      return {
        what: el.getAttribute('name') || el.id || el.textContent.trim().slice(0, 60),
        card: el.matches('#movie-grid a'),
        outline: getComputedStyle(el).outlineStyle,
      };
    });
    // The page put focus on its heading: back up to the skip link (through the menu), then
    // forward until a movie card has focus.
    for (let i = 0; i < 30 && reached.at(-1)?.what !== 'skip-link'; i += 1) {
      await page.keyboard.press('Shift+Tab');
      reached.push(await focused());
    }
    for (let i = 0; i < 60 && !reached.at(-1).card; i += 1) {
      await page.keyboard.press('Tab');
      reached.push(await focused());
    }
    const names = reached.map((r) => r.what);
    for (const wanted of ['skip-link', 'Catalogue', 'Add a movie', 'Account', 'sign-out', 'search', 'year', 'genre', 'director', 'order', 'Search']) {
      assert(names.includes(wanted), `Tab reaches ${wanted} (reached: ${names.join(' | ')})`);
    }
    assert(reached.at(-1).card, 'Tab reaches a movie card');
    const hidden = reached.filter((r) => r.outline === 'none');
    assert(hidden.length === 0, `every focused control shows its focus (not: ${hidden.map((r) => r.what).join(', ')})`);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.activeElement?.matches('main h1') && document.activeElement.textContent !== 'Catalogue');
    assert((await page.url()).includes('#/movies/'), 'Enter on a card opens the movie');
  });

  await run.step('the menu follows roles', async () => {
    assert(await page.locator('#nav a', { hasText: 'Admin' }).count() === 0, 'a user sees no Admin link');
    const admin = await run.newPage('admin');
    await signInWithPassword(admin, config.adminUser);
    await admin.locator('#nav a', { hasText: 'Admin' }).waitFor();
    assert(await admin.locator('#nav a', { hasText: 'Audit' }).count() === 0, 'an admin without the auditor role sees no Audit link');
    await admin.goto('/#/audit');
    await waitForHeading(admin, 'Not allowed');
    await page.goto('/#/admin');
    await waitForHeading(page, 'Not allowed');
  });

  await run.step('a phone-sized screen', async () => {
    const phone = await run.newPage('phone', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await phone.goto('/');
    await phone.locator('#movie-grid li').first().waitFor();
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 0, `no sideways scrolling on a phone (${overflow}px too wide)`);
    await run.screenshot(phone, 'phone-catalogue');
    await accessible(phone, 'phone-catalogue');
    await phone.goto(movieUrl.replace(/^.*#/, '/#'));
    await waitForHeading(phone, title);
    await run.screenshot(phone, 'phone-movie');
    await accessible(phone, 'phone-movie');
  });
});

// The admin dashboard: today's figures, a live chart per contract metric (per minute, last
// hour), projection lag, dead-letter queues, the alerts feed, notification subscriptions and
// roles. Figures refresh every few seconds and at once when an event is stored.
import { h, replace, time, errorBox } from '../dom.js';
import { api } from '../api.js';
import { field, showError, clearErrors, formErrorBox, busy } from '../forms.js';
import { gql, subscribe } from '../graphql.js';
import { metricChart } from '../charts.js';

export const METRICS = [
  ['MoviesAdded', 'Movies added'],
  ['MoviesUpdated', 'Movies updated'],
  ['MoviesRemoved', 'Movies removed'],
  ['PostersUploaded', 'Posters uploaded'],
  ['LoginSucceeded', 'Successful sign-ins'],
  ['LoginFailed', 'Failed sign-ins'],
  ['UsersRegistered', 'Users registered'],
  ['ProjectionLagEvents', 'Projection lag (events)'],
];

const POLL_MS = 5000;

// One request for everything that refreshes: eight metric aliases and five root fields stay
// under the API's alias and root-field limits.
const DASHBOARD = `query Dashboard($from: DateTime!, $to: DateTime!) {
  stats { movies users moviesAddedToday loginsToday failedLoginsToday projectionLag }
  projections { name position lag lastError updatedAt }
  deadLetters { queue messages }
  alerts(first: 20) { at subject message sentAt attempts lastError }
  ${METRICS.map(([name]) => `${name}: metrics(name: "${name}", from: $from, to: $to, periodSeconds: 60) { at value }`).join('\n  ')}
}`;

const STATS = [
  ['movies', 'Movies in the catalogue'],
  ['users', 'Users'],
  ['moviesAddedToday', 'Movies added today (UTC)'],
  ['loginsToday', 'Sign-ins today'],
  ['failedLoginsToday', 'Failed sign-ins today'],
  ['projectionLag', 'Largest projection lag (events)'],
];

function table(caption, headers, rows, id) {
  return h('div', { class: 'table-scroll' }, h('table', { id },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, headers.map((label) => h('th', { scope: 'col' }, label)))),
    h('tbody', {}, rows)));
}

export async function render({ main, announce, onLeave, isStale }) {
  const charts = new Map(METRICS.map(([name, label]) => [name, metricChart({ name, label, gauge: name === 'ProjectionLagEvents' })]));
  const stats = h('dl', { class: 'facts stats', id: 'stats' });
  const projections = h('div', { id: 'projections' });
  const deadLetters = h('div', { id: 'dead-letters' });
  const alerts = h('div', { id: 'alerts' });
  const refreshed = h('p', { class: 'live-note', id: 'dashboard-refreshed', role: 'status' });
  const problems = h('div', {});
  let seenAlerts = null;

  async function refresh() {
    const to = new Date();
    const from = new Date(to.getTime() - 60 * 60000);
    let data;
    try {
      data = await gql(DASHBOARD, { from: from.toISOString(), to: to.toISOString() });
    } catch (error) {
      if (!isStale()) replace(problems, errorBox(error, 'The dashboard could not be refreshed: '));
      return;
    }
    if (isStale()) return;
    replace(problems);
    for (const [name, chart] of charts) chart.update(data[name] ?? [], to);
    replace(stats, STATS.map(([key, label]) => [h('dt', {}, label), h('dd', { dataset: { stat: key } }, String(data.stats[key]))]));
    replace(projections, table('Where each projector stands', ['Projection', 'Position', 'Lag (events)', 'Last error', 'Updated'],
      data.projections.map((p) => h('tr', { dataset: { projection: p.name } },
        h('th', { scope: 'row' }, p.name),
        h('td', {}, String(p.position)),
        h('td', { class: p.lag > 0 ? 'lagging' : undefined }, String(p.lag)),
        h('td', {}, p.lastError ?? 'none'),
        h('td', {}, p.updatedAt ? time(p.updatedAt) : '—')))));
    replace(deadLetters, data.deadLetters.length === 0
      ? h('p', {}, 'This deployment has no dead-letter queues (the embedded profile\'s projectors stop at an event they cannot apply; see "Last error" above).')
      : table('Messages waiting in dead-letter queues', ['Queue', 'Messages'],
        data.deadLetters.map((q) => h('tr', { class: q.messages > 0 ? 'dead-letters-waiting' : undefined },
          h('th', { scope: 'row' }, q.queue),
          h('td', {}, String(q.messages)))), 'dead-letter-table'));
    replace(alerts, data.alerts.length === 0
      ? h('p', {}, 'No alerts yet.')
      : h('ol', { class: 'alert-feed' }, data.alerts.map((alert) => h('li', {},
        h('p', { class: 'alert-subject' }, alert.subject),
        h('p', {}, alert.message),
        h('p', { class: 'hint' }, 'Raised ', time(alert.at), ' · ',
          alert.sentAt ? ['sent ', time(alert.sentAt)] : `not sent yet (${alert.attempts} attempts${alert.lastError ? `: ${alert.lastError}` : ''})`)))));
    const newest = data.alerts[0] ? `${data.alerts[0].at}|${data.alerts[0].subject}` : '';
    if (seenAlerts !== null && newest && newest !== seenAlerts) announce(`New alert: ${data.alerts[0].subject}`);
    seenAlerts = newest;
    replace(refreshed, 'Updated ', time(to.toISOString()), '. Refreshes every few seconds and when events are stored.');
  }

  // Refresh soon after events are stored, at most once a second.
  let pending = null;
  function soon() {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      refresh();
    }, 1000);
  }
  const timer = setInterval(refresh, POLL_MS);
  onLeave(() => {
    clearInterval(timer);
    clearTimeout(pending);
  });
  onLeave(subscribe('subscription AdminEvents { eventAppended { position } }', {}, {
    next: soon,
    error: (error) => replace(problems, errorBox(error, 'Live updates stopped: ')),
  }));

  main.append(
    h('h1', {}, 'Admin dashboard'),
    refreshed,
    problems,
    h('section', { 'aria-labelledby': 'stats-heading' }, h('h2', { id: 'stats-heading' }, 'Today'), stats),
    h('section', { 'aria-labelledby': 'metrics-heading' },
      h('h2', { id: 'metrics-heading' }, 'Metrics, per minute over the last hour'),
      h('div', { class: 'chart-grid', id: 'charts' }, [...charts.values()].map((c) => c.element))),
    h('section', { 'aria-labelledby': 'projections-heading' }, h('h2', { id: 'projections-heading' }, 'Projections'), projections),
    h('section', { 'aria-labelledby': 'dead-letters-heading' }, h('h2', { id: 'dead-letters-heading' }, 'Dead-letter queues'), deadLetters),
    h('section', { 'aria-labelledby': 'alerts-heading' }, h('h2', { id: 'alerts-heading' }, 'Alerts'), alerts),
    subscriptionsSection(announce, isStale),
    rolesSection(announce),
  );
  await refresh();
}

const TOPICS = [['alerts', 'Alerts (admins)'], ['movies', 'New movies'], ['logins', 'Sign-ins (per user)']];
const PROTOCOLS = [['email', 'Email'], ['sms', 'SMS']];

function subscriptionsSection(announce, isStale) {
  const list = h('div', { id: 'subscriptions' });
  const status = h('p', { role: 'status', class: 'status' });
  const fields = [
    field({ name: 'topic', label: 'Topic', options: TOPICS, value: 'alerts' }),
    field({ name: 'protocol', label: 'Protocol', options: PROTOCOLS, value: 'email' }),
    field({ name: 'endpoint', label: 'Endpoint', hint: 'An email address, or for SMS a phone number in E.164 form such as +14155550123.', autocomplete: 'off', required: true }),
  ];
  const formError = formErrorBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Subscribe');

  async function load() {
    try {
      const subscriptions = await api('GET', '/api/admin/subscriptions');
      if (isStale()) return;
      replace(list, subscriptions.length === 0
        ? h('p', {}, 'No subscriptions.')
        : table('Notification subscriptions', ['Topic', 'Protocol', 'Endpoint', 'State', 'Action'],
          subscriptions.map((s) => h('tr', { dataset: { subscription: s.id } },
            h('td', {}, s.topic),
            h('td', {}, s.protocol),
            h('td', {}, s.endpoint),
            h('td', {}, s.pending ? 'waiting for confirmation' : 'active'),
            h('td', {}, h('button', {
              type: 'button',
              'aria-label': `Remove the ${s.protocol} subscription of ${s.endpoint} to ${s.topic}`,
              on: { click: (event) => remove(s, event.currentTarget) },
            }, 'Remove')))), 'subscription-table'));
    } catch (error) {
      replace(list, errorBox(error, 'The subscriptions could not be loaded: '));
    }
  }

  async function remove(subscription, button) {
    await busy(button, async () => {
      try {
        await api('DELETE', `/api/admin/subscriptions/${encodeURIComponent(subscription.id)}`);
        replace(status, `Removed ${subscription.endpoint} from ${subscription.topic}.`);
        announce(`Removed ${subscription.endpoint} from ${subscription.topic}.`);
      } catch (error) {
        replace(status, errorBox(error, 'Not removed: '));
      }
    });
    await load();
    list.querySelector('button')?.focus();
  }

  async function onSubmit(event) {
    event.preventDefault();
    clearErrors(fields, formError);
    replace(status);
    const [topic, protocol, endpoint] = fields.map((f) => f.value().trim());
    await busy(submit, async () => {
      try {
        await api('POST', '/api/admin/subscriptions', { body: { topic, protocol, endpoint } });
        fields[2].input.value = '';
        replace(status, `Subscribed ${endpoint} to ${topic} by ${protocol}.`);
        announce(`Subscribed ${endpoint} to ${topic}.`);
        await load();
      } catch (error) {
        showError(error, fields, formError);
      }
    });
  }

  load();
  return h('section', { 'aria-labelledby': 'subscriptions-heading' },
    h('h2', { id: 'subscriptions-heading' }, 'Notification subscriptions'),
    list,
    h('form', { class: 'inline-form', id: 'subscribe-form', 'aria-labelledby': 'subscribe-heading', novalidate: true, on: { submit: onSubmit } },
      h('h3', { id: 'subscribe-heading' }, 'Add a subscription'),
      formError,
      fields.map((f) => f.element),
      h('p', { class: 'form-actions' }, submit)),
    status);
}

const ROLES = [['user', 'user'], ['admin', 'admin'], ['auditor', 'auditor']];

function rolesSection(announce) {
  const status = h('p', { role: 'status', class: 'status', id: 'role-status' });
  const fields = [
    field({ name: 'username', label: 'Username', autocomplete: 'off', required: true }),
    field({ name: 'role', label: 'Role', options: ROLES, value: 'auditor' }),
  ];
  const formError = formErrorBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Grant role');

  async function onSubmit(event) {
    event.preventDefault();
    clearErrors(fields, formError);
    replace(status);
    const [username, role] = fields.map((f) => f.value().trim());
    if (!username) {
      fields[0].setError('Enter the username to grant a role to.');
      fields[0].input.focus();
      return;
    }
    await busy(submit, async () => {
      try {
        await api('POST', `/api/users/${encodeURIComponent(username)}/roles`, { body: { role } });
        replace(status, `Granted the ${role} role to ${username}.`);
        announce(`Granted the ${role} role to ${username}.`);
      } catch (error) {
        // The API names no field for these two; they are about the username.
        const at = error.code === 'not_found' || error.code === 'role_already_granted' ? 'username' : error.field;
        showError({ message: error.message, field: at }, fields, formError);
      }
    });
  }

  return h('section', { 'aria-labelledby': 'roles-heading' },
    h('h2', { id: 'roles-heading' }, 'Roles'),
    h('p', {}, 'The API lists no other users\' roles, so this grants one by username; each grant is a RoleGranted event in the audit log.'),
    h('form', { class: 'inline-form', id: 'role-form', 'aria-label': 'Grant a role', novalidate: true, on: { submit: onSubmit } },
      formError,
      fields.map((f) => f.element),
      h('p', { class: 'form-actions' }, submit)),
    status);
}

// KISS Dashboard: administrators manage companies, API tokens and admins in the browser, through
// the same JSON API curl uses. Plain ES module, no build step, no third-party code. The admin
// token lives in this tab's sessionStorage only (never in a URL, a cookie or local storage); any
// 401 ends the session and returns to the sign-in form. Text is only ever inserted as text nodes.

const STORE = 'kiss-dashboard-session';
const app = document.getElementById('app');
let session = loadSession();

class ApiError extends Error {
  constructor(status, body, handled = false) {
    super((body && body.message) || `The request failed (${status}).`);
    this.status = status;
    this.errors = (body && body.errors) || null;
    this.handled = handled;
  }
}

// The session's end is the server's to say (its clock, not this machine's, decides): the first
// request it refuses with 401 brings back the sign-in form with a message.
function loadSession() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORE));
    if (stored && stored.token && stored.admin) return stored;
  } catch (_) { /* a malformed entry is dropped below */ }
  sessionStorage.removeItem(STORE);
  return null;
}

function saveSession(value) {
  session = value;
  sessionStorage.setItem(STORE, JSON.stringify(value));
}

function clearSession() {
  session = null;
  sessionStorage.removeItem(STORE);
}

function expire() {
  clearSession();
  renderSignIn('Your session has expired. Please sign in again.');
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (session) headers.Authorization = `Bearer ${session.token}`;
  const init = { method, headers, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api/v2${path}`, init);
  } catch (_) {
    throw new ApiError(0, { message: 'The server cannot be reached. Check the connection and try again.' });
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401 && session) {
    expire();
    throw new ApiError(401, data, true);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** `h('a', {href: '#'}, 'text', child…)`: an element with attributes and children. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function mount(...nodes) {
  app.replaceChildren(...nodes);
}

/** The API's `message`, and every message of `errors`, in an alert region. */
function showError(region, error) {
  if (error.handled) return;
  const messages = error.errors ? Object.values(error.errors).flat() : [];
  region.replaceChildren(
    h('p', {}, error.message),
    messages.length > 1 ? h('ul', {}, messages.map((m) => h('li', {}, m))) : null,
  );
}

/** Runs `work` with `button` disabled, reporting a failure in `region`. */
async function busy(button, region, work) {
  button.disabled = true;
  region.replaceChildren();
  try {
    await work();
  } catch (error) {
    showError(region, error);
  } finally {
    button.disabled = false;
  }
}

function when(value) {
  return value ? new Date(value).toLocaleString() : 'Never';
}

/** A modal confirmation; resolves to true when confirmed. Cancel has the focus. */
function confirmDialog(title, text, confirmLabel) {
  return new Promise((resolve) => {
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const confirm = h('button', { type: 'button', class: 'danger confirm' }, confirmLabel);
    const dialog = h('dialog', { 'aria-labelledby': 'confirm-title' },
      h('h3', { id: 'confirm-title' }, title), h('p', {}, text), h('div', { class: 'actions' }, confirm, cancel));
    const finish = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    confirm.addEventListener('click', () => finish(true));
    cancel.addEventListener('click', () => finish(false));
    dialog.addEventListener('cancel', (event) => { event.preventDefault(); finish(false); });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

function renderSignIn(notice) {
  const alert = h('div', { class: 'alert', role: 'alert' });
  const email = h('input', { type: 'email', id: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', id: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', {
    onsubmit: (event) => {
      event.preventDefault();
      busy(submit, alert, async () => {
        const signedIn = await api('POST', '/admin/sign-in', { email: email.value, password: password.value });
        saveSession(signedIn.data);
        await route();
      });
    },
  },
  h('label', { for: 'email' }, 'E-mail'), email,
  h('label', { for: 'password' }, 'Password'), password,
  h('div', { class: 'actions' }, submit), alert);
  mount(h('main', { class: 'signin' },
    h('h1', {}, 'KISS Dashboard'),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    h('div', { class: 'card' }, form)));
  email.focus();
}

async function signOut() {
  try {
    await api('POST', '/admin/sign-out');
  } catch (_) { /* the session ends here either way */ }
  clearSession();
  history.replaceState(null, '', '#/');
  renderSignIn('You are signed out.');
}

/** Where the hash points: `#/companies/<id>/<api|admins>`. */
function location_() {
  const match = window.location.hash.match(/^#\/companies\/([0-9a-f-]{36})(?:\/(api|admins))?$/);
  return match ? { companyId: match[1], tab: match[2] || 'api' } : { companyId: null, tab: 'api' };
}

async function route() {
  if (!session) {
    renderSignIn();
    return;
  }
  let companies;
  try {
    companies = (await api('GET', '/companies')).data;
  } catch (error) {
    if (!error.handled) mount(h('main', { class: 'signin' }, h('p', { role: 'alert', class: 'alert' }, error.message)));
    return;
  }
  const { companyId, tab } = location_();
  let company = companies.find((c) => c.id === companyId) || null;
  if (!company && companies.length === 1) company = companies[0];
  mount(
    header(),
    h('div', { class: 'layout' }, sidebar(companies, company), h('main', { id: 'content' },
      company ? companyPage(company, tab) : h('section', { class: 'card' },
        h('p', {}, companies.length ? 'Choose a company.' : 'No companies yet.')))),
  );
}

function header() {
  return h('header', { class: 'top' },
    h('strong', {}, 'KISS Dashboard'),
    h('div', {}, h('span', { class: 'who' }, session.admin.email),
      h('button', { type: 'button', class: 'secondary', onclick: signOut }, 'Sign out')));
}

function sidebar(companies, current) {
  const superAdmin = session.admin.company_id === null;
  return h('nav', { class: 'companies', 'aria-label': 'Companies' },
    h('h2', {}, 'Companies'),
    h('ul', {}, companies.map((c) => h('li', {}, h('a', {
      href: `#/companies/${c.id}/api`,
      'aria-current': current && current.id === c.id ? 'page' : null,
    }, c.name)))),
    superAdmin ? createCompanyForm() : null);
}

function createCompanyForm() {
  const alert = h('div', { class: 'alert', role: 'alert' });
  const name = h('input', { type: 'text', id: 'company-name', maxlength: 191, required: true, autocomplete: 'off' });
  const submit = h('button', { type: 'submit' }, 'Create company');
  return h('form', {
    class: 'card',
    onsubmit: (event) => {
      event.preventDefault();
      busy(submit, alert, async () => {
        const created = await api('POST', '/companies', { name: name.value });
        window.location.hash = `#/companies/${created.data.id}/api`;
        await route();
      });
    },
  }, h('label', { for: 'company-name' }, 'Company name'), name, h('div', { class: 'actions' }, submit), alert);
}

function companyPage(company, tab) {
  const tabLink = (name, label) => h('a', {
    href: `#/companies/${company.id}/${name}`,
    'aria-current': tab === name ? 'page' : null,
  }, label);
  return h('section', {},
    h('h1', {}, company.name),
    h('nav', { class: 'tabs', 'aria-label': 'Company sections' }, tabLink('api', 'API'), tabLink('admins', 'Admins')),
    tab === 'admins' ? adminsTab(company) : apiTab(company));
}

function apiTab(company) {
  const alert = h('div', { class: 'alert', role: 'alert' });
  const name = h('input', { type: 'text', id: 'token-name', maxlength: 100, required: true, autocomplete: 'off' });
  const submit = h('button', { type: 'submit' }, 'Create a new token');
  const shown = h('div');
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading tokens…'));
  const listAlert = h('div', { class: 'alert', role: 'alert' });

  const refresh = async () => {
    const tokens = (await api('GET', `/companies/${company.id}/api-tokens`)).data;
    list.replaceChildren(tokens.length === 0 ? h('p', { class: 'muted' }, 'No active tokens.') : h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Created'), h('th', {}, 'Last used'), h('th', {}, h('span', { class: 'muted' }, '')))),
      h('tbody', {}, tokens.map((token) => tokenRow(token)))));
  };
  const tokenRow = (token) => {
    const revoke = h('button', { type: 'button', class: 'danger' }, 'Revoke');
    revoke.addEventListener('click', async () => {
      const sure = await confirmDialog(`Revoke “${token.name}”?`,
        'A PMS using it is refused from its next request on. This cannot be undone.', 'Revoke token');
      if (!sure) return;
      await busy(revoke, listAlert, async () => {
        await api('DELETE', `/companies/${company.id}/api-tokens/${token.id}`);
        await refresh();
      });
    });
    return h('tr', { 'data-role': 'token-row' },
      h('td', { 'data-label': 'Name' }, token.name),
      h('td', { 'data-label': 'Created' }, when(token.created_at)),
      h('td', { 'data-label': 'Last used' }, when(token.last_used_at)),
      h('td', { class: 'actions-cell' }, revoke));
  };

  const form = h('form', {
    class: 'card',
    onsubmit: (event) => {
      event.preventDefault();
      busy(submit, alert, async () => {
        const created = (await api('POST', `/companies/${company.id}/api-tokens`, { name: name.value })).data;
        name.value = '';
        shown.replaceChildren(newTokenPanel(created, () => shown.replaceChildren()));
        await refresh();
        shown.querySelector('[data-role="copy"]').focus();
      });
    },
  },
  h('h2', {}, 'API tokens'),
  h('p', { class: 'muted' }, 'A PMS server sends its token as "Authorization: Bearer <token>" to push units and tenancies for this company.'),
  h('label', { for: 'token-name' }, 'Token name'), name, h('div', { class: 'actions' }, submit), alert);

  refresh().catch((error) => showError(listAlert, error));
  return h('div', {}, form, shown, h('section', { class: 'card', 'aria-labelledby': 'active-tokens' },
    h('h2', { id: 'active-tokens' }, 'Active tokens'), list, listAlert));
}

function newTokenPanel(token, done) {
  const status = h('span', { role: 'status', class: 'muted' });
  const code = h('code', { 'data-role': 'new-token' }, token.token);
  const copy = h('button', { type: 'button', 'data-role': 'copy' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(token.token);
      status.textContent = 'Copied.';
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents(code);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      status.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
    }
  });
  return h('section', { class: 'card new-token', 'aria-labelledby': 'new-token-title' },
    h('h2', { id: 'new-token-title' }, `New token “${token.name}”`),
    h('p', {}, h('strong', {}, 'Copy it now: you won’t see it again.'), ' kiss-auth keeps only a hash of it.'),
    code,
    h('div', { class: 'actions' }, copy, h('button', { type: 'button', class: 'secondary', onclick: done }, 'Done'), status));
}

function adminsTab(company) {
  const superAdmin = session.admin.company_id === null;
  const alert = h('div', { class: 'alert', role: 'alert' });
  const listAlert = h('div', { class: 'alert', role: 'alert' });
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading admins…'));
  const email = h('input', { type: 'email', id: 'admin-email', required: true, autocomplete: 'off' });
  const password = h('input', { type: 'password', id: 'admin-password', required: true, minlength: 12, autocomplete: 'new-password' });
  const everyCompany = h('input', { type: 'checkbox', id: 'admin-super' });
  const submit = h('button', { type: 'submit' }, 'Create admin');

  const refresh = async () => {
    const admins = (await api('GET', '/admins')).data
      .filter((admin) => admin.company_id === company.id || admin.company_id === null);
    list.replaceChildren(h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'E-mail'), h('th', {}, 'Scope'), h('th', {}, 'Created'), h('th', {}, 'Status'), h('th', {}, ''))),
      h('tbody', {}, admins.map((admin) => adminRow(admin)))));
  };
  const adminRow = (admin) => {
    const canDisable = !admin.disabled_at && admin.id !== session.admin.id && (superAdmin || admin.company_id !== null);
    let disable = null;
    if (canDisable) {
      disable = h('button', { type: 'button', class: 'danger' }, 'Disable');
      disable.addEventListener('click', async () => {
        const sure = await confirmDialog(`Disable ${admin.email}?`, 'Their sessions end at once and they can no longer sign in.', 'Disable admin');
        if (!sure) return;
        await busy(disable, listAlert, async () => {
          await api('POST', `/admins/${admin.id}/disable`);
          await refresh();
        });
      });
    }
    return h('tr', { 'data-role': 'admin-row' },
      h('td', { 'data-label': 'E-mail' }, admin.email),
      h('td', { 'data-label': 'Scope' }, admin.company_id === null ? 'Every company' : company.name),
      h('td', { 'data-label': 'Created' }, when(admin.created_at)),
      h('td', { 'data-label': 'Status' }, admin.disabled_at
        ? h('span', { class: 'badge off' }, 'Disabled') : h('span', { class: 'badge' }, 'Active')),
      h('td', { class: 'actions-cell' }, disable));
  };

  const form = h('form', {
    class: 'card',
    onsubmit: (event) => {
      event.preventDefault();
      busy(submit, alert, async () => {
        const body = { email: email.value, password: password.value };
        if (!everyCompany.checked) body.company_id = company.id;
        await api('POST', '/admins', body);
        email.value = '';
        password.value = '';
        await refresh();
      });
    },
  },
  h('h2', {}, 'Add an admin'),
  h('label', { for: 'admin-email' }, 'Admin e-mail'), email,
  h('label', { for: 'admin-password' }, 'Admin password'), password,
  h('p', { class: 'muted' }, '12 to 1024 characters.'),
  superAdmin ? h('label', { class: 'check', for: 'admin-super' }, everyCompany, 'Super admin (every company)') : null,
  h('div', { class: 'actions' }, submit), alert);

  refresh().catch((error) => showError(listAlert, error));
  return h('div', {}, h('section', { class: 'card', 'aria-labelledby': 'admins-title' },
    h('h2', { id: 'admins-title' }, 'Admins'), list, listAlert), form);
}

window.addEventListener('hashchange', () => { route(); });
route();

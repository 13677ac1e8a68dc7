// Every page of the UI. A route: { path ('/movies/:id'), title, page (a lazy import of a module
// exporting `render(context)`), role? ('user' | 'admin' | 'auditor': needed to open it),
// signedIn? (any signed-in user) }. First match wins, so put fixed paths before patterns.
// `nav` is the main menu: a link shows when its `role` / `signedIn` / `anonymous` condition holds.

export const routes = [
  { path: '/', title: 'Catalogue', page: () => import('./pages/catalogue.js') },
  { path: '/movies/new', title: 'Add a movie', role: 'user', page: () => import('./pages/movie-form.js') },
  { path: '/movies/:id/edit', title: 'Edit movie', role: 'user', page: () => import('./pages/movie-form.js') },
  { path: '/movies/:id', title: 'Movie', page: () => import('./pages/movie.js') },
  { path: '/register', title: 'Register', page: () => import('./pages/register.js') },
  { path: '/sign-in', title: 'Sign in', page: () => import('./pages/sign-in.js') },
  { path: '/account', title: 'Your account', signedIn: true, page: () => import('./pages/account.js') },
  { path: '/admin', title: 'Admin dashboard', role: 'admin', page: () => import('./pages/admin.js') },
  { path: '/audit', title: 'Audit', role: 'auditor', page: () => import('./pages/audit.js') },
  { path: '/audit/movies/:id', title: 'Movie history', role: 'auditor', page: () => import('./pages/audit-movie.js') },
];

export const nav = [
  { href: '#/', label: 'Catalogue' },
  { href: '#/movies/new', label: 'Add a movie', role: 'user' },
  { href: '#/admin', label: 'Admin', role: 'admin' },
  { href: '#/audit', label: 'Audit', role: 'auditor' },
  { href: '#/account', label: 'Account', signedIn: true },
  { href: '#/sign-in', label: 'Sign in', anonymous: true },
  { href: '#/register', label: 'Register', anonymous: true },
];

// A tiny browser-like HTTP client: a cookie jar, manual redirects, forms
// with the page's CSRF token.
import { secret } from './secrets.mjs';

export class Client {
  constructor(base) {
    this.base = base;
    this.jar = new Map();
  }

  get csrf() { return this.jar.get('gh_csrf'); }

  cookieHeader() {
    return [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  store(res) {
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a)) || value === '';
      if (expired) this.jar.delete(name);
      else { this.jar.set(name, value); if (/^(__Host-)?gh_(session|device|vault)$/.test(name)) secret(value); }
    }
  }

  url(path) { return /^https?:/.test(path) ? path : this.base + path; }

  async request(method, path, { body, headers = {} } = {}) {
    const h = { ...headers };
    if (this.jar.size && !h.Cookie && !h.cookie) h.Cookie = this.cookieHeader();
    if (body !== undefined && typeof body === 'object' && !(body instanceof URLSearchParams)) {
      body = new URLSearchParams(body).toString();
      h['Content-Type'] ??= 'application/x-www-form-urlencoded';
    } else if (body instanceof URLSearchParams) {
      body = body.toString();
      h['Content-Type'] ??= 'application/x-www-form-urlencoded';
    }
    if (method === 'POST' && h.Origin === undefined && h.origin === undefined) h.Origin = new URL(this.base).origin;
    const res = await fetch(this.url(path), { method, body, headers: h, redirect: 'manual' });
    this.store(res);
    return res;
  }

  get(path, opts = {}) { return this.request('GET', path, opts); }
  post(path, body, opts = {}) { return this.request('POST', path, { ...opts, body }); }

  json(method, path, obj, { headers = {} } = {}) {
    return this.request(method, path, {
      body: obj === undefined ? undefined : JSON.stringify(obj),
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...headers },
    });
  }

  /* GETs pagePath (for the CSRF cookie), then POSTs fields + csrf to actionPath. */
  async form(pagePath, actionPath, fields) {
    const page = await this.get(pagePath);
    await page.arrayBuffer();
    return this.post(actionPath, { ...fields, csrf: this.csrf });
  }

  /* Signs in; resolves with the POST /login response (303 on success). */
  async login(email, password, next) {
    const res = await this.form(next ? `/login?next=${encodeURIComponent(next)}` : '/login', '/login',
      next ? { email, password, next } : { email, password });
    await res.arrayBuffer();
    return res;
  }
}

/* Extracts a form input's value from HTML: inputValue(html, 'csrf'). */
export function inputValue(html, name) {
  const m = html.match(new RegExp(`<input[^>]*name="${name}"[^>]*value="([^"]*)"`)) ||
            html.match(new RegExp(`<input[^>]*value="([^"]*)"[^>]*name="${name}"`));
  return m ? m[1].replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>') : undefined;
}

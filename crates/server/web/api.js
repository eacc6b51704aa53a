// The HTTP API of the server (/api/v1): JSON requests with the bearer
// token, and errors as ApiError carrying the problem details' title.

/** An error answer of the API (RFC 9457 problem details), or no answer. */
export class ApiError extends Error {
  constructor(title, status, problem) {
    super(title);
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem || null;
  }

  /** What to show a person: the problem's title, and its detail if any. */
  get text() {
    const detail = this.problem && typeof this.problem.detail === 'string' ? this.problem.detail : '';
    return detail ? `${this.message} (${detail})` : this.message;
  }
}

export class Api {
  constructor() {
    this.token = null;
    /** Called when a request with the token gets 401 (session ended). */
    this.onUnauthorized = () => {};
  }

  /**
   * `method` `path` (under /api/v1) with an optional JSON body. Resolves to
   * the parsed JSON answer (null for 204); rejects with ApiError.
   */
  async request(method, path, body, { signal } = {}) {
    const headers = { Accept: 'application/json, application/problem+json' };
    const withToken = Boolean(this.token);
    if (withToken) headers.Authorization = `Bearer ${this.token}`;
    const init = { method, headers, signal, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(`/api/v1${path}`, init);
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError('The server cannot be reached; check your connection', 0, null);
    }
    let data = null;
    const type = res.headers.get('Content-Type') || '';
    if (res.status !== 204 && type.includes('json')) {
      data = await res.json().catch(() => null);
    }
    if (!res.ok) {
      const title = data && typeof data.title === 'string' && data.title
        ? data.title
        : `The server answered ${res.status} ${res.statusText}`.trim();
      const err = new ApiError(title, res.status, data);
      if (res.status === 401 && withToken && this.token) this.onUnauthorized(err);
      throw err;
    }
    return data;
  }

  get(path, opts) { return this.request('GET', path, undefined, opts); }
  post(path, body) { return this.request('POST', path, body); }
  put(path, body) { return this.request('PUT', path, body); }
  delete(path) { return this.request('DELETE', path); }
}

/** A path segment (user addresses contain '@'). */
export const seg = (s) => encodeURIComponent(s);

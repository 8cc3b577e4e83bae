// What the portal's pages share to talk to its API (window.hepstoreApi): a JSON call that
// turns an error answer into an Error (message, status, problems), the text of such an
// error, and the polling of a job, which asks again a few times while the server is briefly
// busy.
window.hepstoreApi = (function () {
  "use strict";

  function csrf() {
    const m = document.cookie.match(/csrftoken=([^;]+)/);
    return m ? m[1] : "";
  }

  // A job made anonymously is seen only with the secret token returned when it was made.
  async function call(method, url, body, token) {
    const headers = { "Content-Type": "application/json", "X-CSRFToken": csrf() };
    if (token) headers["X-Job-Token"] = token;
    const response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const err = data.error || {};
      const e = new Error(err.message || response.statusText);
      e.status = response.status;
      e.problems = err.problems || [];
      throw e;
    }
    return { status: response.status, data };
  }

  // The error's message with each problem the answer listed, one per line.
  function describe(e) {
    const problems = (e.problems || []).map((p) => `${p.pointer}: ${p.message}`);
    return [e.message, ...problems].join("\n");
  }

  // Polling a job: a server that is briefly busy (5xx, 429, a dropped connection) is asked
  // again a few times before the page gives up; a 4xx answer is final at once.
  async function poll(url, token) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call("GET", url, undefined, token);
      } catch (e) {
        const transient = e.status === undefined || e.status >= 500 || e.status === 429;
        if (!transient || attempt >= 10) throw e;
        await new Promise((r) => setTimeout(r, 1000 * attempt));
      }
    }
  }

  return { call, describe, poll };
})();

// Reinterpretation panel of a likelihood page: grid scan with progress, exclusion contour,
// CLs colours in the signal grid, and a form for one's own signal yields.
(function () {
  "use strict";
  const panel = document.getElementById("reinterpret");
  if (!panel) return;
  const id = panel.dataset.likelihood;
  const api = "/api/v1";

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
      const problems = (err.problems || []).map((p) => `${p.pointer}: ${p.message}`);
      throw new Error([err.message || response.statusText, ...problems].join("\n"));
    }
    return { status: response.status, data };
  }

  // A number of a result as text: "— (reason)" for null, "> 10" for a limit above the
  // upper bound of the POI.
  function shown(value, digits, reason, above, bound) {
    if (above) return `> ${bound}`;
    if (value === null || value === undefined) return `— (${reason || "no value"})`;
    return value.toPrecision(digits);
  }

  function colour(cls) {
    if (cls < 0.05) return "#f6c7c3";
    if (cls < 0.2) return "#fbe3b0";
    return "#d6e9d8";
  }

  function showScan(job) {
    for (const point of job.result.points) {
      const row = document.querySelector(`tr[data-name="${CSS.escape(point.patch)}"]`);
      if (!row) continue;
      const cell = row.querySelector("td.cls");
      if (point.error || point.cls_obs === null) {
        // No number: say so, and why (a point that cannot be built, or a null CLs).
        cell.textContent = point.error ? "not evaluated" : "—";
        cell.title = point.error || (point.null_reasons || {}).cls_obs || "";
        cell.style.background = "";
        continue;
      }
      cell.textContent = point.cls_obs.toPrecision(3);
      cell.title = "";
      cell.style.background = colour(point.cls_obs);
    }
    if (job.result.contour) {
      const query = job.token ? `?token=${encodeURIComponent(job.token)}` : "";
      document.getElementById("contour").innerHTML =
        `<img src="${api}/jobs/${job.id}/contour.svg${query}" alt="exclusion contour" width="640" height="480">`;
    }
  }

  async function follow(job, progress, status) {
    const token = job.token;
    progress.hidden = false;
    while (!["succeeded", "failed", "cancelled"].includes(job.state)) {
      progress.max = job.progress.total || 1;
      progress.value = job.progress.done;
      if (status) status.textContent = `${job.state}: ${job.progress.done}/${job.progress.total} points`;
      await new Promise((r) => setTimeout(r, 700));
      job = { ...(await call("GET", `${api}/jobs/${job.id}`, undefined, token)).data, token };
    }
    progress.hidden = true;
    if (job.state !== "succeeded") throw new Error(`job ${job.state}: ${job.error}`);
    return job;
  }

  const scanButton = document.getElementById("run-scan");
  if (scanButton) {
    const progress = document.getElementById("scan-progress");
    const status = document.getElementById("scan-status");
    // The last scan made from this browser (its token is kept here), else one's own.
    const key = `hepstore-scan-${id}`;
    const saved = JSON.parse(localStorage.getItem(key) || "null");
    const last = saved
      ? call("GET", `${api}/jobs/${saved.id}`, undefined, saved.token)
          .then(({ data }) => [{ ...data, token: saved.token }])
      : call("GET", `${api}/jobs/?likelihood=${id}&kind=scan&state=succeeded`)
          .then(({ data }) => data.results);
    last.then((jobs) => {
      if (jobs.length && jobs[0].state === "succeeded") {
        showScan(jobs[0]);
        status.textContent = `last scan: ${jobs[0].finished}`;
      }
    }).catch(() => localStorage.removeItem(key));
    scanButton.addEventListener("click", async () => {
      scanButton.disabled = true;
      try {
        const created = (await call("POST", `${api}/likelihoods/${id}/scan`, {})).data;
        if (created.token) {
          localStorage.setItem(key, JSON.stringify({ id: created.id, token: created.token }));
        }
        const job = await follow(created, progress, status);
        showScan(job);
        status.textContent = "done";
      } catch (e) {
        status.textContent = e.message;
      } finally {
        scanButton.disabled = false;
      }
    });
  }

  function parseSignal(text) {
    text = text.trim();
    if (text.startsWith("{")) return JSON.parse(text);
    const signal = {};
    for (const line of text.split(/\r?\n/)) {
      if (!line.trim() || line.startsWith("#")) continue;
      const [channel, ...values] = line.split(",").map((x) => x.trim());
      signal[channel] = values.map(Number);
    }
    return { signal };
  }

  const form = document.getElementById("custom-signal");
  const out = document.getElementById("custom-result");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const progress = document.getElementById("custom-progress");
    out.textContent = "computing…";
    try {
      const file = form.signal_file.files[0];
      const text = file ? await file.text() : form.signal.value;
      let { status, data } = await call("POST", `${api}/likelihoods/${id}/reinterpret`,
                                        parseSignal(text));
      if (status === 202) data = (await follow(data, progress, null)).result;
      const why = data.null_reasons || {};
      const exp = data.cls_exp.map((x, i) => shown(x, 3, why[`cls_exp[${i}]`])).join(", ");
      const limit = shown(data.mu_up_obs, 4, why.mu_up_obs, data.limit_above_poi_bound,
                          data.poi_upper_bound);
      const known = data.cls_obs !== null;
      out.innerHTML = "";
      const box = document.createElement("div");
      box.className = "verdict " + (!known || data.cls_obs < 0.05 ? "invalid" : "valid");
      box.id = "custom-verdict";
      box.textContent = `CLs obs = ${shown(data.cls_obs, 4, why.cls_obs)} ` +
        `(expected −2σ…+2σ: ${exp}); μ̂ = ${shown(data.mu_hat, 3, why.mu_hat)}; ` +
        `upper limit on μ = ${limit}` +
        (!known ? "" : data.cls_obs < 0.05 ? " — excluded at 95% CL" : " — not excluded");
      out.appendChild(box);
    } catch (e) {
      out.innerHTML = "";
      const pre = document.createElement("pre");
      pre.className = "verdict invalid";
      pre.textContent = e.message;
      out.appendChild(pre);
    }
  });
})();

// Reinterpretation panel of a likelihood page: grid scan with progress, exclusion contour,
// CLs colours in the signal grid, and a form for one's own signal yields.
(function () {
  "use strict";
  const panel = document.getElementById("reinterpret");
  if (!panel) return;
  const id = panel.dataset.likelihood;
  const api = "/api/v1";

  const { call, describe, poll } = window.hepstoreApi;

  // A number of a result as text: "— (reason)" for null, "> 10" for a limit above the
  // upper bound of the POI.
  function shown(value, digits, reason, above, bound) {
    if (above) return `> ${bound}`;
    if (value === null || value === undefined) return `— (${reason || "no value"})`;
    return value.toPrecision(digits);
  }


  // The same writing of numbers as reinterpret/formatting.py.
  function fmtCls(x) {
    if (x === null || x === undefined || !Number.isFinite(x)) return "–";
    if (x < 1e-6) return "< 1e-6";
    return fmtNumber(x);
  }

  function fmtNumber(x, digits = 3) {
    if (x === null || x === undefined || !Number.isFinite(x)) return "–";
    // Like Python's "%.3g": fixed or exponent notation, trailing zeros dropped.
    const exp = x === 0 ? 0 : Math.floor(Math.log10(Math.abs(x)));
    if (exp < -4 || exp >= digits) {
      const [m, e] = x.toExponential(digits - 1).split("e");
      const n = Number(e);
      return `${String(Number(m))}e${n < 0 ? "-" : "+"}${String(Math.abs(n)).padStart(2, "0")}`;
    }
    return String(Number(x.toPrecision(digits)));
  }

  function verdict(cls) {
    if (cls === null || cls === undefined || !Number.isFinite(cls)) return "";
    return cls < 0.05 ? "excluded" : "not excluded";
  }

  const slicesData = document.getElementById("slices-data");
  const slices = slicesData ? JSON.parse(slicesData.textContent) : {};
  const scanForm = document.getElementById("scan-form");

  function sliceText(fixed, points) {
    const parts = Object.entries(fixed).map(([k, v]) => `${k} = ${v}`);
    return `${parts.length ? parts.join(", ") : "all points"} (${points} point${points === 1 ? "" : "s"})`;
  }

  function fillSlices(selected) {
    const key = `${scanForm.x.value}|${scanForm.y.value}`;
    const options = slices[key] || [];
    scanForm.slice.innerHTML = "";
    options.forEach((s, i) => {
      const option = document.createElement("option");
      option.value = String(i);
      option.textContent = sliceText(s.fixed, s.points);
      if (selected && JSON.stringify(s.fixed) === JSON.stringify(selected)) option.selected = true;
      scanForm.slice.appendChild(option);
    });
  }

  function chosen() {
    const options = slices[`${scanForm.x.value}|${scanForm.y.value}`] || [];
    const s = options[Number(scanForm.slice.value)] || { fixed: {} };
    return { x: scanForm.x.value, y: scanForm.y.value, fixed: s.fixed };
  }

  function viewQuery(params) {
    const q = new URLSearchParams({ x: params.x, y: params.y });
    for (const [k, v] of Object.entries(params.fixed || {})) q.set(k, String(v));
    return q.toString();
  }

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    a.setAttribute("download", "");
    return a;
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
        cell.className = "cls";
        row.querySelector("td.verdict-cell").textContent = "";
        continue;
      }
      cell.title = "";
      cell.textContent = fmtCls(point.cls_obs);
      const v = verdict(point.cls_obs);
      cell.className = "cls " + (v === "excluded" ? "excluded" : v ? "allowed" : "");
      row.querySelector("td.verdict-cell").textContent = v;
    }
    if (!job.result.contour) return;
    const c = job.result.contour;
    const params = { x: c.x_label, y: c.y_label, fixed: c.fixed || {} };
    // Anonymous owners read their job's downloads with its token.
    const q = viewQuery(params) + (job.token ? `&token=${encodeURIComponent(job.token)}` : "");
    const base = `${api}/jobs/${job.id}`;
    const hasLimits = job.result.points.some((p) => "mu_up_obs" in p);
    const box = document.getElementById("contour");
    box.innerHTML = "";
    const img = document.createElement("img");
    img.src = `${base}/exclusion.svg?${q}`;
    img.alt = "exclusion contour";
    img.id = "exclusion-plot";
    box.appendChild(img);
    if (hasLimits) {
      const ul = document.createElement("img");
      ul.src = `${base}/upper-limits.svg?${q}`;
      ul.alt = "upper limits on mu";
      ul.id = "upper-limit-map";
      box.appendChild(ul);
    }
    const downloads = document.getElementById("scan-downloads");
    downloads.hidden = false;
    downloads.innerHTML = "";
    downloads.append(`Scan ${job.id}, ${sliceText(params.fixed, job.result.points.length)} — exclusion plot: `);
    for (const fmt of ["svg", "png", "pdf"]) {
      downloads.append(link(`${base}/exclusion.${fmt}?${q}`, fmt.toUpperCase()), " ");
    }
    if (hasLimits) {
      downloads.append("· upper-limit map: ");
      for (const fmt of ["svg", "png", "pdf"]) {
        downloads.append(link(`${base}/upper-limits.${fmt}?${q}`, `UL ${fmt.toUpperCase()}`), " ");
      }
    }
    downloads.append("· contour: ");
    downloads.append(link(`${base}/contour.json?${q}`, "JSON"), " ", link(`${base}/contour.csv?${q}`, "CSV"));
  }

  async function follow(job, progress, status) {
    const token = job.token;
    progress.hidden = false;
    while (!["succeeded", "failed", "cancelled"].includes(job.state)) {
      progress.max = job.progress.total || 1;
      progress.value = job.progress.done;
      if (status) status.textContent = `${job.state}: ${job.progress.done}/${job.progress.total} points`;
      await new Promise((r) => setTimeout(r, 700));
      job = { ...(await poll(`${api}/jobs/${job.id}`, token)).data, token };
    }
    progress.hidden = true;
    if (job.state !== "succeeded") throw new Error(`job ${job.state}: ${job.error}`);
    return job;
  }

  const scanButton = document.getElementById("run-scan");
  if (scanButton) {
    const progress = document.getElementById("scan-progress");
    const status = document.getElementById("scan-status");
    fillSlices(null);
    scanForm.x.addEventListener("change", () => fillSlices(null));
    scanForm.y.addEventListener("change", () => fillSlices(null));
    // The last scan made from this browser (its token is kept here), else one's own.
    const key = `hepstore-scan-${id}`;
    const saved = JSON.parse(localStorage.getItem(key) || "null");
    const last = saved
      ? call("GET", `${api}/jobs/${saved.id}`, undefined, saved.token)
          .then(({ data }) => [{ ...data, token: saved.token }])
      : call("GET", `${api}/jobs/?likelihood=${id}&kind=scan&state=succeeded`)
          .then(({ data }) => data.results);
    last.then((jobs) => {
      const job = jobs[0];
      if (!job || job.state !== "succeeded" || !job.result || !job.result.contour) return;
      scanForm.x.value = job.result.contour.x_label;
      scanForm.y.value = job.result.contour.y_label;
      fillSlices(job.result.contour.fixed || {});
      showScan(job);
      status.textContent = `last scan: ${job.finished}`;
    }).catch(() => localStorage.removeItem(key));
    scanButton.addEventListener("click", async () => {
      scanButton.disabled = true;
      try {
        const params = chosen();
        if (params.x === params.y) throw new Error("choose two different labels for x and y");
        const body = { ...params, upper_limit: scanForm.upper_limit.checked };
        const created = (await call("POST", `${api}/likelihoods/${id}/scan`, body)).data;
        if (created.token) {
          localStorage.setItem(key, JSON.stringify({ id: created.id, token: created.token }));
        }
        const job = await follow(created, progress, status);
        showScan(job);
        status.textContent = "done";
      } catch (e) {
        status.textContent = describe(e);
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
      const digest = data.patch_sha256 || (data.inputs || {}).patch_sha256;
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
      if (data.channels) {
        const note = document.createElement("p");
        note.id = "custom-channels";
        note.textContent = `Channels: ${data.channels.note}.`;
        out.appendChild(note);
      }
      if (digest) {
        const p = document.createElement("p");
        const a = document.createElement("a");
        a.href = `/likelihoods/${id}/custom/${digest}/`;
        a.id = "custom-point-link";
        a.textContent = "Full view of this signal: yields before and after the fit, pulls, downloads";
        p.appendChild(a);
        out.appendChild(p);
      }
    } catch (e) {
      out.innerHTML = "";
      const pre = document.createElement("pre");
      pre.className = "verdict invalid";
      pre.textContent = describe(e);
      out.appendChild(pre);
    }
  });
})();

// Combination pages: create/check a combination from archived likelihoods, and scan a
// combination's grid with progress, CLs colours and the exclusion contour.
(function () {
  "use strict";
  const api = "/api/v1";

  const { call, poll } = window.hepstoreApi;

  function names(text) {
    return text.split(",").map((x) => x.trim()).filter(Boolean);
  }

  function lines(text) {
    return text.split(/\r?\n/).map((x) => x.trim()).filter(Boolean);
  }

  function problemsTable(problems) {
    const table = document.createElement("table");
    table.className = "list";
    table.id = "problems";
    table.innerHTML = "<thead><tr><th>Member</th><th>Pointer</th><th>Severity</th><th>Message</th></tr></thead>";
    const body = document.createElement("tbody");
    for (const p of problems) {
      const row = document.createElement("tr");
      for (const value of [p.file, p.pointer, p.severity, p.message]) {
        const cell = document.createElement("td");
        cell.textContent = value || "";
        row.appendChild(cell);
      }
      body.appendChild(row);
    }
    table.appendChild(body);
    return table;
  }

  const form = document.getElementById("new-combination");
  if (form) {
    const out = document.getElementById("combination-report");
    const definition = () => {
      const members = [...form.querySelectorAll("input[name=member]:checked")].map((box) => ({
        likelihood: Number(box.value),
        tag: form.querySelector(`input[name="tag-${box.value}"]`).value.trim(),
      }));
      const renames = lines(form.renames.value).map((line) => {
        const [head, neu] = [line.slice(0, line.lastIndexOf("=")), line.slice(line.lastIndexOf("=") + 1)];
        const colon = head.indexOf(":");
        const tags = members.map((m) => m.tag);
        if (colon > 0 && tags.includes(head.slice(0, colon))) {
          return { member: head.slice(0, colon), old: head.slice(colon + 1), new: neu };
        }
        return { old: head, new: neu };
      });
      const prefer = lines(form.prefer.value).map((line) => {
        const i = line.lastIndexOf("=");
        return i < 0 ? { member: line } : { parameter: line.slice(0, i), member: line.slice(i + 1) };
      });
      const policy = { decorrelate: names(form.decorrelate.value), renames, prefer };
      if (form.correlate_only_mode.checked) policy.correlate_only = names(form.correlate_only.value);
      return { name: form.name.value.trim(), members, policy };
    };
    const show = (verdict, ok, problems) => {
      out.innerHTML = "";
      const box = document.createElement("div");
      box.className = "verdict " + (ok ? "valid" : "invalid");
      box.id = "verdict";
      box.textContent = verdict;
      out.appendChild(box);
      if (problems && problems.length) out.appendChild(problemsTable(problems));
    };
    document.getElementById("check-combination").addEventListener("click", async () => {
      try {
        const { data } = await call("POST", `${api}/combinations/validate`, definition());
        show(data.valid ? `Combines: ${data.summary.points} combined points` : "Does not combine",
             data.valid, data.problems);
      } catch (e) {
        show(e.message, false, e.problems);
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const { data } = await call("POST", `${api}/combinations/`, definition());
        window.location.href = data.page;
      } catch (e) {
        show(e.message, false, e.problems);
      }
    });
  }

  const panel = document.getElementById("combination-scan");
  if (!panel) return;
  const id = panel.dataset.combination;
  const button = document.getElementById("run-scan");
  const progress = document.getElementById("scan-progress");
  const status = document.getElementById("scan-status");

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
      if (point.cls_obs === null || point.cls_obs === undefined) {
        cell.textContent = "n/a";
        continue;
      }
      cell.textContent = point.cls_obs.toPrecision(3);
      cell.style.background = colour(point.cls_obs);
    }
    if (job.result.contour) {
      document.getElementById("contour").innerHTML =
        `<img src="${api}/combinations/${id}/scans/${job.id}/contour.svg${job.token ? `?token=${encodeURIComponent(job.token)}` : ""}" alt="exclusion contour" width="640" height="480">`;
    }
  }

  async function follow(job) {
    const token = job.token;
    progress.hidden = false;
    while (!["succeeded", "failed", "cancelled"].includes(job.state)) {
      progress.max = job.progress.total || 1;
      progress.value = job.progress.done;
      status.textContent = `${job.state}: ${job.progress.done}/${job.progress.total} points`;
      await new Promise((r) => setTimeout(r, 700));
      job = { ...(await poll(`${api}/jobs/${job.id}`, token)).data, token };
    }
    progress.hidden = true;
    if (job.state !== "succeeded") throw new Error(`job ${job.state}: ${job.error}`);
    return job;
  }

  call("GET", `${api}/combinations/${id}`).then(({ data }) => {
    if (data.latest_scan && data.latest_scan.state === "succeeded") {
      showScan(data.latest_scan);
      status.textContent = `last scan: ${data.latest_scan.finished}`;
    }
  });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      showScan(await follow((await call("POST", `${api}/combinations/${id}/scan`, {})).data));
      status.textContent = "done";
    } catch (e) {
      status.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  });
})();

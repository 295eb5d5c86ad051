// The auditor's view draws its charts from the tables beside them: each <canvas class="chart"
// data-for="ID"> gets a bar chart of table#ID's rows (label, count), read as text. Chart.js
// (served from the package, never a CDN) draws on the canvas, so no record text becomes markup.
'use strict';
(() => {
  if (typeof Chart === 'undefined') return;
  for (const canvas of document.querySelectorAll('canvas.chart')) {
    const table = document.getElementById(canvas.dataset.for);
    if (!table) continue;
    const rows = [...table.querySelectorAll('tbody tr')].slice(0, 20);
    const labels = rows.map((r) => r.querySelector('.label').textContent.slice(0, 60));
    const data = rows.map((r) => Number(r.querySelector('.n').textContent));
    // biome-ignore lint/correctness/noUndeclaredVariables: Chart is the global of chart.umd.js
    new Chart(canvas, {
      type: 'bar',
      data: { labels, datasets: [{ label: table.previousElementSibling ? 'count' : '', data, backgroundColor: '#b03a2e' }] },
      options: { indexAxis: 'y', animation: false, plugins: { legend: { display: false } }, maintainAspectRatio: false },
    });
  }
})();

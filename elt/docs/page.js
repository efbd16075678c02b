const D = JSON.parse(document.getElementById('elt-data').textContent);
const byName = Object.fromEntries(D.nodes.map(n => [n.name, n]));
const W = 190, H = 26, GX = 60, GY = 8;
function esc(s){return String(s ?? '').replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));}
function drawDag(){
  const cols = {};
  for (const n of D.nodes){ (cols[n.layer] = cols[n.layer] || []).push(n); }
  let maxRows = 0;
  for (const [l, ns] of Object.entries(cols)){
    ns.forEach((n, i) => { n.x = l * (W + GX) + 10; n.y = i * (H + GY) + 10; });
    maxRows = Math.max(maxRows, ns.length);
  }
  const width = (Object.keys(cols).length) * (W + GX) + 20, height = maxRows * (H + GY) + 20;
  let s = `<svg id="dag-svg" width="${width}" height="${height}">`;
  for (const n of D.nodes) for (const d of n.depends_on){
    const a = byName[d]; if (!a) continue;
    s += `<path class="edge" data-from="${esc(d)}" data-to="${esc(n.name)}" d="M${a.x+W},${a.y+H/2} C${a.x+W+GX/2},${a.y+H/2} ${n.x-GX/2},${n.y+H/2} ${n.x},${n.y+H/2}"/>`;
  }
  for (const n of D.nodes){
    const label = n.name.length > 28 ? n.name.slice(0, 27) + '…' : n.name;
    s += `<g class="node k-${n.kind} s-${esc(n.status)}" data-node="${esc(n.name)}" transform="translate(${n.x},${n.y})">`
       + `<title>${esc(n.name)} (${n.kind}${n.status ? ', ' + n.status : ''})</title>`
       + `<rect width="${W}" height="${H}"/><text x="6" y="17">${esc(label)}</text></g>`;
  }
  document.getElementById('dag').innerHTML = s + '</svg>';
  document.querySelectorAll('.node').forEach(g => g.addEventListener('click', () => showNode(g.dataset.node)));
}
function status(s){ return s ? `<span class="${s === 'error' ? 'bad' : 'ok'}">${esc(s)}</span>` : '<span class="muted">never run</span>'; }
function showNode(name){
  const n = byName[name]; if (!n) return;
  let h = `<h2>${esc(n.name)} <span class="muted">${n.kind}${n.materialized ? ' · ' + n.materialized : ''}</span></h2>`;
  h += `<div>last status: ${status(n.status)}${n.rows != null ? ' · ' + n.rows + ' rows' : ''}${n.built_at ? ' · ' + esc(n.built_at) : ''}</div>`;
  if (n.message) h += `<div class="muted">${esc(n.message)}</div>`;
  if (n.path) h += `<div class="muted">${esc(n.path)}</div>`;
  if (n.description) h += `<p>${esc(n.description)}</p>`;
  const pub = D.publications.find(p => p.node === name);
  if (pub){
    h += `<p>${esc(pub.operation)} → ${esc(pub.endpoint)} · model ${esc(pub.model)}</p><table><tr>`;
    for (const [k, v] of Object.entries(pub.ledger)) h += `<th>${k}</th>`;
    h += '</tr><tr>' + Object.values(pub.ledger).map(v => `<td class="ledger">${v}</td>`).join('') + '</tr></table>';
    h += '<h2>Fields</h2>' + fieldChips(pub);
  }
  if (n.columns.length){
    h += '<h2>Columns</h2><table>' + n.columns.map(c => `<tr><td>${esc(c.name)}</td><td class="muted">${esc(c.type)}</td><td>${esc(c.description)}</td></tr>`).join('') + '</table>';
  }
  if (n.tests.length){
    h += '<h2>Tests</h2><table>' + n.tests.map(t => `<tr><td>${esc(t.name)}</td><td>${status(t.status)}</td><td class="muted">${esc(t.message)}</td></tr>`).join('') + '</table>';
  }
  if (n.sql) h += `<h2>SQL</h2><pre>${esc(n.sql)}</pre>`;
  const el = document.getElementById('details'); el.innerHTML = h; bindFields(el);
}
function fieldChips(pub){
  return pub.fields.map(f => `<span class="field" data-pub="${esc(pub.name)}" data-field="${esc(f.field)}">${esc(f.field)}</span>`).join('');
}
function bindFields(root){
  root.querySelectorAll('.field').forEach(el => el.addEventListener('click', () => showField(el.dataset.pub, el.dataset.field)));
}
function showField(pubName, fieldName){
  const pub = D.publications.find(p => p.name === pubName);
  const f = pub.fields.find(x => x.field === fieldName);
  document.querySelectorAll('.field').forEach(el => el.classList.toggle('on', el.dataset.pub === pubName && el.dataset.field === fieldName));
  const levels = [];
  (function walk(refs, d){ if (!refs.length) return; (levels[d] = levels[d] || []).push(...refs); for (const r of refs) walk(r.inputs, d + 1); })(f.inputs, 0);
  let h = `<h2>Lineage of ${esc(pubName)}.${esc(fieldName)}</h2><div class="chain"><div class="col"><div class="box fld">${esc(pubName)}.${esc(fieldName)}<br><span>${esc(f.expression)}</span></div></div>`;
  for (const level of levels){
    const seen = new Set();
    h += '<div class="col">' + level.filter(r => { const k = r.node + '.' + r.column; if (seen.has(k)) return false; seen.add(k); return true; }).map(r =>
      `<div class="box ${r.inputs.length ? '' : 'src'}" title="${esc(r.note || '')}">${esc(r.node)}.<b>${esc(r.column)}</b>${r.expression && r.expression !== r.column ? '<br><span class="muted">= ' + esc(r.expression) + '</span>' : ''}</div>`).join('') + '</div>';
  }
  h += '</div><h2>Source columns</h2><ul id="lineage-sources">'
     + (f.sources.length ? f.sources.map(s => `<li class="source">${esc(s.node)}.${esc(s.column)} <span class="muted">(${s.kind})</span></li>`).join('') : '<li class="muted">none: a constant</li>') + '</ul>';
  document.getElementById('lineage').innerHTML = h;
  const lit = new Set([pub.node, pub.model]);
  (function mark(refs){ for (const r of refs){ lit.add(r.node); mark(r.inputs); } })(f.inputs);
  document.querySelectorAll('.node').forEach(g => g.classList.toggle('lit', lit.has(g.dataset.node)));
  document.querySelectorAll('.edge').forEach(e => e.classList.toggle('lit', lit.has(e.dataset.from) && lit.has(e.dataset.to)));
}
drawDag();
document.getElementById('publications').innerHTML = D.publications.map(p =>
  `<div class="pub" data-publication="${esc(p.name)}"><b class="pubname">${esc(p.name)}</b> <span class="muted">${esc(p.operation)} → ${esc(p.endpoint)} · ${p.ledger.acknowledged} acknowledged, ${p.ledger.failed} failed</span><br>${fieldChips(p)}</div>`).join('') || '<p class="muted">no publications</p>';
bindFields(document.getElementById('publications'));
// a link to one field (index.html#field=PUB/FIELD) opens its lineage as a click on its chip would
function followHash(){
  const m = /^#field=([^/]+)\/(.+)$/.exec(decodeURIComponent(location.hash));
  const el = m && [...document.querySelectorAll('#publications .field')].find(x => x.dataset.pub === m[1] && x.dataset.field === m[2]);
  if (el) el.click();
}
window.addEventListener('hashchange', followHash);
followHash();

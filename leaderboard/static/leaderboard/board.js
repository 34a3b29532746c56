// The leaderboard table, searched and sorted in the page.
//
// Progressive enhancement: without this script the table comes in rank order and the search
// form asks the server, which sends the rows that do not match as hidden rows. With it, the
// search filters those same rows as you type, and each sortable column header becomes a
// button that sorts by that column (aria-sort tells assistive technology the order).
(function () {
  "use strict";

  const table = document.querySelector("table[data-board]");
  if (!table) return;
  const body = table.tBodies[0];
  const rows = Array.from(body.rows).filter((row) => row.hasAttribute("data-search"));
  const empty = document.getElementById("board-empty");
  const status = document.getElementById("board-status");
  const form = document.querySelector("form.board-search");
  const input = form ? form.querySelector("input[name=q]") : null;
  const headers = Array.from(table.tHead.rows[0].cells);

  function search() {
    const query = input.value.trim();
    const needle = query.toLocaleLowerCase();
    let shown = 0;
    for (const row of rows) {
      const match = !needle || row.dataset.search.includes(needle);
      row.hidden = !match;
      if (match) shown += 1;
    }
    if (empty) empty.hidden = shown > 0;
    status.textContent = query
      ? `${shown} of ${rows.length} model${rows.length === 1 ? "" : "s"} match “${query}”.`
      : "";
    // The address keeps the search, so reloading or sharing the page shows the same rows.
    const url = new URL(window.location.href);
    if (query) url.searchParams.set("q", query);
    else url.searchParams.delete("q");
    window.history.replaceState(null, "", url);
  }

  if (form && input) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      search();
    });
    input.addEventListener("input", search);
  }

  function value(row, index) {
    const cell = row.cells[index];
    return cell.hasAttribute("data-value") ? cell.dataset.value : cell.textContent.trim();
  }

  function compare(a, b, kind) {
    // Empty cells ("—") go last whichever way the column is sorted: handled by the caller.
    if (kind === "number") return parseFloat(a) - parseFloat(b);
    return a.localeCompare(b, undefined, { sensitivity: "base", numeric: true });
  }

  function sortBy(index, header) {
    const kind = header.dataset.sort;
    const current = header.getAttribute("aria-sort");
    let ascending;
    if (current === "ascending") ascending = false;
    else if (current === "descending") ascending = true;
    else ascending = header.dataset.first !== "descending";
    for (const other of headers) other.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const sorted = rows.slice().sort((a, b) => {
      const x = value(a, index);
      const y = value(b, index);
      if (x === "" || y === "") return (x === "") - (y === "");
      const order = compare(x, y, kind);
      return ascending ? order : -order;
    });
    for (const row of sorted) body.insertBefore(row, empty);
    const label = header.textContent.trim();
    status.textContent = `Sorted by ${label}, ${ascending ? "ascending" : "descending"}.`;
  }

  headers.forEach((header, index) => {
    if (!header.dataset.sort) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    while (header.firstChild) button.appendChild(header.firstChild);
    header.appendChild(button);
    button.addEventListener("click", () => sortBy(index, header));
  });
})();

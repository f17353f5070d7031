/* Response times (/response), browser side: the grid's duration formatters, priority
 * badge and call-id cell. Durations come from the shared formatter (display.js). */
(function () {
  "use strict";
  var functions = window.dashAgGridFunctions = window.dashAgGridFunctions || {};
  var components = window.dashAgGridComponentFunctions =
    window.dashAgGridComponentFunctions || {};

  // The shared formatters (assets/display.js, twin of streams/core/display.py).
  functions.durationText = function (seconds) {
    return window.dispatchDisplay.duration(seconds);
  };

  // '+2:04' past target, '−0:45' within it (the sign says which side).
  functions.signedDurationText = function (seconds) {
    return window.dispatchDisplay.signedDuration(seconds);
  };

  // 'P2' as the priority badge every page draws (assets/display.css palette).
  components.Priority = function (props) {
    var text = props.value === null || props.value === undefined ? "" : String(props.value);
    var digit = /^P([1-5])$/.exec(text);
    if (!digit) return text;
    return React.createElement("span", {className: "prio-badge p" + digit[1]}, text);
  };

  // 'H261125-00037-jytp30uu': the CAD-style number in full, the simulator's run tag
  // (seed + start, unique across restarts) dimmed after it. Other ids show as they are.
  var RUN_TAG = /^(H\d{6}-\d{5})(-[0-9a-z]+)$/;

  // The slowest calls for paper: every row, every column, as a plain table (the grid
  // draws only the rows in its viewport). Cells read as the grid's formatters show them.
  function printedCell(column, value) {
    if (value === null || value === undefined) return window.dispatchDisplay.MISSING;
    var format = (column.valueFormatter || {}).function || "";
    if (format.indexOf("signedDurationText") === 0) {
      return window.dispatchDisplay.signedDuration(value);
    }
    if (format.indexOf("durationText") === 0) return window.dispatchDisplay.duration(value);
    return String(value);
  }
  function element(type, children, props) {
    return {namespace: "dash_html_components", type: type,
            props: Object.assign({children: children}, props || {})};
  }
  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.response = Object.assign(window.dash_clientside.response || {}, {
    printTable: function (rows, columns) {
      if (!rows || !rows.length || !columns) return null;
      var head = element("Tr", columns.map(function (c) { return element("Th", c.headerName); }));
      var body = rows.map(function (row) {
        return element("Tr", columns.map(function (c) {
          return element("Td", printedCell(c, row[c.field]));
        }));
      });
      // The server sends at most the slowest 100 (SLOWEST_LIMIT): say how many are here.
      return [element("H3", rows.length + " calls, ranked by how far they went past their " +
                      "own priority's target"),
              element("Table", [element("Thead", head), element("Tbody", body)])];
    }
  });

  components.CallId = function (props) {
    var text = props.value === null || props.value === undefined ? "" : String(props.value);
    var parts = RUN_TAG.exec(text);
    if (!parts) return text;
    return React.createElement("span", null, parts[1],
      React.createElement("span", {className: "response-run-tag"}, parts[2]));
  };
})();

/* Response times (/response), browser side: the grid's duration formatter and call-id cell.
 * Same wording as dashboard/responseview.py duration_text: '45 s', '2:04', '1:02:03'. */
(function () {
  "use strict";
  var functions = window.dashAgGridFunctions = window.dashAgGridFunctions || {};
  var components = window.dashAgGridComponentFunctions =
    window.dashAgGridComponentFunctions || {};

  functions.durationText = function (seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
    var total = Math.round(seconds);
    if (total < 60) return total + " s";
    var hours = Math.floor(total / 3600);
    var minutes = Math.floor((total % 3600) / 60);
    var secs = total % 60;
    var mm = hours && minutes < 10 ? "0" + minutes : String(minutes);
    return (hours ? hours + ":" + mm : mm) + ":" + (secs < 10 ? "0" : "") + secs;
  };

  // '+2:04' past target, '−45 s' within it (the sign says which side).
  functions.signedDurationText = function (seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
    return (seconds < 0 ? "−" : "+") + functions.durationText(Math.abs(seconds));
  };

  // 'H261125-00037-jytp30uu': the CAD-style number in full, the simulator's run tag
  // (seed + start, unique across restarts) dimmed after it. Other ids show as they are.
  var RUN_TAG = /^(H\d{6}-\d{5})(-[0-9a-z]+)$/;

  components.CallId = function (props) {
    var text = props.value === null || props.value === undefined ? "" : String(props.value);
    var parts = RUN_TAG.exec(text);
    if (!parts) return text;
    return React.createElement("span", null, parts[1],
      React.createElement("span", {className: "response-run-tag"}, parts[2]));
  };
})();

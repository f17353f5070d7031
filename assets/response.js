/* Response times (/response), browser side: the grid's duration formatter.
 * Same wording as dashboard/responseview.py duration_text: '45 s', '2:04', '1:02:03'. */
(function () {
  "use strict";
  var functions = window.dashAgGridFunctions = window.dashAgGridFunctions || {};

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
})();

// The gate form's rule, in words as a refusal will say it, while it is typed.
(function () {
  var input = document.getElementById('gate-rules');
  var words = document.getElementById('rule-words');
  if (!input || !words || !window.VoelgoedRules) return;
  var first = words.textContent;
  function show() {
    var text = input.value.trim();
    if (!text) { words.textContent = first; words.classList.remove('error'); return; }
    try {
      words.textContent = 'In words: ' + window.VoelgoedRules.describe(JSON.parse(text));
      words.classList.remove('error');
    } catch (e) {
      words.textContent = 'Not a rule yet: ' + e.message;
      words.classList.add('error');
    }
  }
  input.addEventListener('input', show);
  show();
})();

// PocketMolt's few lines of script. Every page works without them: they follow the live
// status, keep a form from being sent twice, and tidy the onboarding form.
(function () {
  'use strict';

  // A form is sent once: its buttons are disabled right after the browser has read them
  // (disabling them at once would drop the pressed button's name from the form).
  var submitting = false;
  document.addEventListener('submit', function (e) {
    var form = e.target;
    submitting = true;
    setTimeout(function () {
      form.querySelectorAll('button').forEach(function (b) { b.disabled = true; });
    }, 0);
  });
  // Coming back with the Back button shows the page as it was left: buttons usable again.
  window.addEventListener('pageshow', function (e) {
    if (e.persisted) {
      submitting = false;
      document.querySelectorAll('button[disabled]').forEach(function (b) { b.disabled = false; });
    }
  });

  // Onboarding: show only the models of the chosen plan, and the key and token fields only
  // when they are used.
  var model = document.getElementById('model');
  if (model) {
    var syncModels = function () {
      var plan = document.querySelector('input[name=plan]:checked');
      if (!plan) { return; }
      var firstOffered = null;
      Array.prototype.forEach.call(model.options, function (o) {
        var offered = (' ' + o.getAttribute('data-plans') + ' ').indexOf(' ' + plan.value + ' ') >= 0;
        o.hidden = !offered;
        o.disabled = !offered;
        if (offered && !firstOffered) { firstOffered = o; }
      });
      var sel = model.options[model.selectedIndex];
      if ((!sel || sel.disabled) && firstOffered) { firstOffered.selected = true; }
    };
    var syncFields = function () {
      var byok = document.getElementById('key_mode-byok');
      var key = document.getElementById('api_key');
      if (byok && key) { key.closest('.field').hidden = !byok.checked; }
      var tg = document.getElementById('telegram');
      var token = document.getElementById('telegram_token');
      if (tg && token) { token.closest('.field').hidden = !tg.checked; }
    };
    document.addEventListener('change', function (e) {
      if (e.target.name === 'plan') { syncModels(); }
      if (e.target.name === 'key_mode' || e.target.name === 'telegram') { syncFields(); }
    });
    syncModels();
    syncFields();
  }

  // The dashboard's live status: server-sent events, or polling where they fail.
  var stage = document.getElementById('stage');
  if (!stage) { return; }
  var label = document.getElementById('stage-label');
  var text = document.getElementById('stage-text');
  var apply = function (s) {
    if (!s || typeof s.stage !== 'string') { return; }
    // Other buttons apply now (paid, placed, cancelled…): the server renders them. Not while
    // a form is being sent (its answer is the new page), and without a stale notice.
    if (s.actions !== stage.getAttribute('data-actions')) {
      if (!submitting) { window.location.replace(window.location.pathname); }
      return;
    }
    stage.setAttribute('data-stage', s.stage);
    if (label.textContent !== s.label) { label.textContent = s.label; }
    if (text.textContent !== s.text) { text.textContent = s.text; }
  };
  var polling = false;
  var poll = function () {
    if (polling) { return; }
    polling = true;
    var url = stage.getAttribute('data-poll');
    var tick = function () {
      fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (r) {
          var json = r.ok && (r.headers.get('Content-Type') || '').indexOf('application/json') === 0;
          if (!json) { throw new Error('logged out'); }
          return r.json();
        })
        .then(function (s) { apply(s); setTimeout(tick, 3000); })
        .catch(function () { setTimeout(tick, 15000); });
    };
    tick();
  };
  if (!window.EventSource) { poll(); return; }
  var es = new EventSource(stage.getAttribute('data-events'));
  es.addEventListener('status', function (e) {
    try { apply(JSON.parse(e.data)); } catch (err) { /* a bad event is skipped */ }
  });
  es.onerror = function () {
    // The browser reconnects by itself; a closed stream (logged out, or a proxy that does not
    // pass it) falls back to polling.
    if (es.readyState === EventSource.CLOSED) { poll(); }
  };
})();

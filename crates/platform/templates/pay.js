// The buyer's order page while the order waits for its payment.
//
// Card: the browser confirms the PaymentIntent at the card provider itself
// (Stripe's client-side flow: the publishable key and the intent's client
// secret, form-encoded, as Stripe.js sends it), so card details never pass
// through this platform. The order turns paid when the provider's signed
// webhook reaches the platform; this page waits for that, then reloads.
// EFT: a countdown to the payment deadline.
(function () {
  "use strict";
  var say = function (text) {
    var s = document.getElementById("pay-status");
    if (s) { s.textContent = text; }
  };

  var wait = function (url, tries) {
    fetch(url, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (o) {
        if (o.status && o.status !== "pending") { window.location.reload(); return; }
        if (o.payment && o.payment.failure) { say("The payment failed: " + o.payment.failure); }
        if (tries > 0) { setTimeout(function () { wait(url, tries - 1); }, 500); }
      })
      .catch(function () {
        if (tries > 0) { setTimeout(function () { wait(url, tries - 1); }, 1000); }
      });
  };

  var form = document.getElementById("card-form");
  if (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var d = form.dataset;
      var intent = d.secret.split("_secret_")[0];
      var body = new URLSearchParams();
      body.set("key", d.pk);
      body.set("client_secret", d.secret);
      body.set("payment_method", form.elements.card.value);
      form.querySelector("button").disabled = true;
      say("Paying…");
      fetch(d.api + "/v1/payment_intents/" + encodeURIComponent(intent) + "/confirm", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: body.toString()
      })
        .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
        .then(function (x) {
          form.querySelector("button").disabled = false;
          if (!x.ok) {
            say((x.j.error && x.j.error.message) || "The card provider refused the payment.");
            return;
          }
          say("Paid. Waiting for the confirmation…");
          wait(d.poll, 120);
        })
        .catch(function () {
          form.querySelector("button").disabled = false;
          say("The card provider could not be reached; try again.");
        });
    });
  }

  var c = document.getElementById("countdown");
  if (c) {
    var until = Date.parse(c.dataset.until);
    var tick = function () {
      var left = Math.max(0, Math.floor((until - Date.now()) / 1000));
      var m = Math.floor(left / 60), s = left % 60;
      c.textContent = m + ":" + (s < 10 ? "0" : "") + s;
      if (left > 0) { setTimeout(tick, 1000); }
    };
    tick();
  }
})();

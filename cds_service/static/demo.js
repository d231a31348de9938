// The demo page's only script: the raw-JSON toggle, the hook/draft switch, and the spec's
// feedback for accepted suggestions and overrides. Text is only ever set with textContent.
"use strict";

(function () {
  function byId(id) {
    return document.getElementById(id);
  }

  function postFeedback(item) {
    var url = byId("cards").dataset.feedbackUrl;
    var sent = { feedback: [item] };
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(sent),
    }).then(function (response) {
      return response.json().then(function (body) {
        return { ok: response.ok, status: response.status, body: body, sent: sent };
      });
    });
  }

  function report(card, result, what) {
    var status = card.querySelector(".card__status");
    var log = card.querySelector(".card__feedback");
    if (result.ok) {
      status.textContent = what + ": feedback stored (received " + result.body.received +
        ", newly stored " + result.body.stored + ", already stored " + result.body.alreadyStored + ").";
      status.dataset.state = "stored";
    } else {
      status.textContent = "Feedback refused: HTTP " + result.status + " " +
        (result.body.error || "") + ": " + (result.body.message || "");
      status.dataset.state = "refused";
    }
    log.textContent = "POST " + byId("cards").dataset.feedbackUrl + "\n" +
      JSON.stringify(result.sent, null, 2) + "\n\nHTTP " + result.status + "\n" +
      JSON.stringify(result.body, null, 2);
    log.hidden = false;
  }

  function settle(card) {
    card.querySelectorAll("button").forEach(function (button) { button.disabled = true; });
    card.classList.add("card--answered");
  }

  function accept(button) {
    var card = button.closest(".card");
    settle(card);
    postFeedback({
      card: card.dataset.cardUuid,
      outcome: "accepted",
      acceptedSuggestions: [{ id: button.dataset.suggestionUuid }],
      outcomeTimestamp: new Date().toISOString(),
    }).then(function (result) {
      report(card, result, "Accepted “" + button.textContent.trim() + "”");
      if (result.ok) {
        button.classList.add("is-accepted");
        button.parentElement.querySelector(".suggestion__actions").hidden = false;
      }
    });
  }

  function override(button) {
    var card = button.closest(".card");
    var option = card.querySelector(".override__reason").selectedOptions[0];
    settle(card);
    postFeedback({
      card: card.dataset.cardUuid,
      outcome: "overridden",
      overrideReason: {
        reason: { system: option.dataset.system, code: option.dataset.code, display: option.dataset.display },
      },
      outcomeTimestamp: new Date().toISOString(),
    }).then(function (result) {
      report(card, result, "Overridden (" + option.dataset.display + ")");
    });
  }

  function syncDraft() {
    var hook = document.querySelector("input[name=hook]:checked");
    byId("draft").disabled = !hook || hook.value === "patient-view";
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest("button");
    if (!target) return;
    if (target.classList.contains("suggestion__accept")) accept(target);
    else if (target.classList.contains("override__send")) override(target);
    else if (target.id === "toggle-raw") {
      var raw = byId("raw");
      raw.hidden = !raw.hidden;
      target.setAttribute("aria-expanded", String(!raw.hidden));
      target.textContent = (raw.hidden ? "Show" : "Hide") + " request and response JSON";
    }
  });

  // The chosen demo patient's one-line description, under the picker.
  function syncDescription() {
    var option = byId("patient").selectedOptions[0];
    byId("patient-description").textContent = option ? option.dataset.description : "";
  }

  document.addEventListener("change", function (event) {
    if (event.target.name === "hook") syncDraft();
    else if (event.target.id === "patient") syncDescription();
  });

  syncDraft();
})();

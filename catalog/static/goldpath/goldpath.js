// Goldpath pages, whatever the layout: htmx requests carry the CSRF token (from <meta name="goldpath-csrf">);
// every refusal is shown (htmx drops 4xx/5xx answers by default, which left stale results on screen); the
// Governance menu closes on Escape or a click elsewhere.
(function () {
  "use strict";

  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="goldpath-csrf"]');
    if (meta) event.detail.headers["X-CSRFToken"] = meta.content;
  });

  // --- refusals --------------------------------------------------------------------------------------------
  // A view that refuses with a fragment (a form or a row with its errors, 400/403/409) is swapped in like a
  // success. Anything else (a whole error page, JSON, text, no answer) leaves the target as it was, marked as
  // out of date, and a message says what happened.

  function isDocument(text) {
    return /^\s*(<!doctype|<html)/i.test(text || "");
  }

  function contentType(xhr) {
    return ((xhr && xhr.getResponseHeader("Content-Type")) || "").toLowerCase();
  }

  function clip(text, max) {
    text = (text || "").replace(/\s+/g, " ").trim();
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  function messageFromJson(text) {
    try {
      var data = JSON.parse(text);
      if (typeof data === "string") return data;
      if (data && (data.detail || data.message)) return String(data.detail || data.message);
      if (data && typeof data === "object") {
        var parts = [];
        Object.keys(data).forEach(function (key) {
          var value = data[key];
          parts.push((key === "non_field_errors" ? "" : key + ": ") + (Array.isArray(value) ? value.join(" ") : String(value)));
        });
        return parts.join("; ");
      }
    } catch (e) { /* not JSON after all */ }
    return "";
  }

  function messageFromDocument(text) {
    var doc = new DOMParser().parseFromString(text, "text/html");
    var marked = doc.querySelector("[data-gp-error-message]");
    if (marked) return marked.textContent;
    var title = doc.querySelector("main h1, h1");
    var para = doc.querySelector("main p, p");
    return [title && title.textContent, para && para.textContent].filter(Boolean).join(": ");
  }

  function describe(xhr) {
    var status = xhr ? xhr.status : 0;
    var text = xhr ? xhr.responseText : "";
    var type = contentType(xhr);
    var detail = "";
    if (type.indexOf("json") !== -1) detail = messageFromJson(text);
    else if (type.indexOf("html") !== -1 && isDocument(text)) detail = messageFromDocument(text);
    else if (type.indexOf("text/") === 0) detail = text;
    var what = status === 0 ? "The server could not be reached"
      : status === 403 ? "Not allowed"
      : status === 404 ? "Not found"
      : status === 409 ? "Not possible now"
      : status === 429 ? "Too many requests; wait a moment"
      : status >= 500 ? "The server failed (error " + status + ")"
      : "The request was refused (error " + status + ")";
    detail = clip(detail, 300);
    return detail && detail.toLowerCase() !== what.toLowerCase() ? what + ". " + detail : what + ".";
  }

  function sourceKey(target) {
    return target && target.id ? target.id : "";
  }

  function messagesList() {
    var main = document.getElementById("main") || document.querySelector("main") || document.body;
    var list = main.querySelector(":scope > ul.messages");
    if (!list) {
      list = document.createElement("ul");
      list.className = "messages";
      list.setAttribute("role", "status");
      list.setAttribute("aria-live", "polite");
      main.insertBefore(list, main.firstChild);
    }
    return list;
  }

  function showError(text, target) {
    var list = messagesList();
    var key = sourceKey(target);
    var existing = list.querySelectorAll("li[data-gp-htmx-error]");
    for (var i = 0; i < existing.length; i++) {
      if (existing[i].textContent === text) return; // a poller failing again: one message is enough
    }
    var item = document.createElement("li");
    item.className = "error";
    item.setAttribute("role", "alert");
    item.setAttribute("data-gp-htmx-error", key);
    item.textContent = text;
    list.appendChild(item);
    if (target && target.classList && target !== document.body) {
      target.classList.add("gp-stale");
      target.setAttribute("data-gp-stale", "The content below may be out of date: " + text);
    }
  }

  function clearErrors(target) {
    var key = sourceKey(target);
    document.querySelectorAll("li[data-gp-htmx-error]").forEach(function (item) {
      if (item.getAttribute("data-gp-htmx-error") === key) item.remove();
    });
    if (target && target.classList) {
      target.classList.remove("gp-stale");
      target.removeAttribute("data-gp-stale");
    }
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    var xhr = detail.xhr;
    var text = xhr ? xhr.responseText : "";
    var html = contentType(xhr).indexOf("text/html") !== -1;
    var whole = detail.target === document.body;
    if (xhr.status >= 200 && xhr.status < 300) {
      if (!whole && html && isDocument(text)) {
        // a fragment was asked for and a whole page came back: a redirect (the sign-in page after the session
        // ended). Go there rather than nest a page in the target, and come back to this page afterwards.
        detail.shouldSwap = false;
        var url = new URL(xhr.responseURL || window.location.href, window.location.href);
        if (url.searchParams.has("next")) url.searchParams.set("next", window.location.pathname + window.location.search);
        window.location.assign(url.toString());
      }
      return;
    }
    if (xhr.status >= 400 && xhr.status < 500 && html && text.trim() && !isDocument(text)) {
      detail.shouldSwap = true; // the view rendered the form or row with its errors
      detail.isError = false;
      return;
    }
    detail.shouldSwap = false;
    showError(describe(xhr), detail.target);
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    clearErrors(event.detail.target); // fresh content (a result, or the form with its errors) replaced the old
  });

  document.addEventListener("htmx:sendError", function (event) {
    showError(describe(null), event.detail.target);
  });

  document.addEventListener("htmx:timeout", function (event) {
    showError("The server did not answer in time. Try again.", event.detail.target);
  });

  // --- Governance menu -------------------------------------------------------------------------------------
  function closeMenus(except) {
    document.querySelectorAll("details[data-nav-menu][open]").forEach(function (menu) {
      if (menu !== except) menu.removeAttribute("open");
    });
  }

  document.addEventListener("click", function (event) {
    closeMenus(event.target.closest ? event.target.closest("details[data-nav-menu]") : null);
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector("details[data-nav-menu][open]");
    if (open) {
      open.removeAttribute("open");
      var summary = open.querySelector("summary");
      if (summary) summary.focus();
    }
  });
})();

// /sign-in: a key typed in the form, or a one-time link token carried in
// the URL fragment (#zsl_…, never sent to the server by the browser on its
// own), exchanged for a session cookie by POST /api/v1/sign-in.

import { $, api, setBusy } from "/assets/lib.js";

// next is where to go after signing in: a local page only, never another origin.
function next() {
  const n = new URLSearchParams(location.search).get("next") || "";
  return /^\/(pricing|console|studio)$/.test(n) ? n : "/console";
}

function showError(msg) {
  const el = $("form-error");
  el.textContent = msg;
  el.hidden = false;
}

async function signIn(body) {
  await api("POST", "/api/v1/sign-in", body, { redirectOn401: false });
  location.replace(next());
}

async function withLink(token) {
  // Drop the token from the address bar and history: it is single use.
  history.replaceState(null, "", location.pathname + location.search);
  const status = $("link-status");
  status.textContent = "Signing you in with your link…";
  status.hidden = false;
  try {
    await signIn({ link: token });
  } catch (e) {
    status.hidden = true;
    showError(e.status === 401
      ? "This sign-in link is not valid: it may have expired (links last 15 minutes) or been used already. Ask for a new one, or sign in with a key."
      : e.message);
  }
}

function main() {
  const form = $("key-form");
  const input = $("key");
  const btn = $("submit");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("form-error").hidden = true;
    const key = input.value.trim();
    if (!key) {
      showError("Enter one of your API keys.");
      input.focus();
      return;
    }
    setBusy(btn, true, "Signing in…");
    try {
      await signIn({ key });
    } catch (e) {
      showError(e.status === 401 ? "That key was not accepted. Check it and try again." : e.message);
      setBusy(btn, false);
      input.select();
    }
  });
  const frag = location.hash.slice(1);
  if (frag.startsWith("zsl_")) withLink(frag);
  else input.focus();
  // A link pasted into this open page changes only its fragment.
  addEventListener("hashchange", () => {
    const f = location.hash.slice(1);
    if (f.startsWith("zsl_")) withLink(f);
  });
}

main();

// The "server" of the example admin (a static imitation of Django's admin, for examples/admin.toml):
// staff accounts, a session cookie, a login form that refuses strangers with an .errornote, and
// pages that send a signed-out visitor to the login page with ?next=.
const STAFF = ["alice", "bob", "carol", "dave", "erin", "frank"];

function adminUser() {
  const match = document.cookie.match(/(?:^|; )admin_session=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : null;
}

function requireLogin() {
  const user = adminUser();
  if (!user) {
    const here = location.pathname.split("/").pop() + location.search;
    location.replace("login.html?next=" + encodeURIComponent(here));
    return null;
  }
  const tools = document.getElementById("user-tools");
  if (tools) tools.textContent = "Welcome, " + user + ".";
  const ua = document.getElementById("ua");
  if (ua) ua.textContent = navigator.userAgent;
  const logout = document.getElementById("logout");
  if (logout) logout.addEventListener("click", () => {
    document.cookie = "admin_session=; max-age=0; path=/";
    location.href = "logged-out.html";
  });
  return user;
}

function setUpLogin() {
  const form = document.getElementById("login-form");
  if (new URLSearchParams(location.search).get("error")) {
    const note = document.getElementById("errornote");
    note.textContent = "Please enter the correct username and password for a staff account.";
    note.hidden = false;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const user = document.getElementById("id_username").value.trim();
    const password = document.getElementById("id_password").value;
    if (!STAFF.includes(user) || !password) {
      // Like Django: the form comes back from the server with an error note (here, a new page load).
      const next = new URLSearchParams(location.search).get("next") || "index.html";
      location.assign("login.html?error=1&next=" + encodeURIComponent(next));
      return;
    }
    document.cookie = "admin_session=" + encodeURIComponent(user) + "; max-age=86400; path=/; samesite=lax";
    const next = new URLSearchParams(location.search).get("next") || "index.html";
    location.assign(/^[a-z-]+\.html(\?[a-z0-9=&]*)?$/.test(next) ? next : "index.html");
  });
}

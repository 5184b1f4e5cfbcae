// Shows who is signed in, from the session cookie the sign-in page sets.
(function () {
  const match = document.cookie.match(/(?:^|; )session=([^;]*)/);
  const who = document.getElementById("who");
  if (match && who) who.textContent = "Signed in as " + decodeURIComponent(match[1]);
})();

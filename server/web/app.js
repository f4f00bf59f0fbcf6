// turso-mcp pages: copy buttons, and a busy state while Turso checks a key.
// Nothing here sends anything anywhere: the forms post to this server only.
'use strict';

function copyText(id, button) {
  const el = document.getElementById(id);
  if (!el) return;
  const text = el.textContent;
  const done = () => {
    button.textContent = 'Copied';
    setTimeout(() => { button.textContent = 'Copy'; }, 2000);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => selectText(el));
  } else {
    selectText(el);
  }
}

// Without the clipboard API (plain http), select the text for Ctrl+C.
function selectText(el) {
  const range = document.createRange();
  range.selectNodeContents(el);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}

document.addEventListener('DOMContentLoaded', () => {
  for (const button of document.querySelectorAll('button.copy')) {
    button.addEventListener('click', () => copyText(button.dataset.copy, button));
  }
  const form = document.getElementById('signup');
  if (form) {
    form.addEventListener('submit', () => {
      const submit = document.getElementById('submit');
      submit.disabled = true;
      submit.textContent = 'Checking with Turso…';
    });
  }
});

// Minimal HTML for the sandbox's pages (CBUI, errors, admin): escaping and one shared layout.

export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

/** Tagged template that escapes every interpolated value unless it is already `Html`. */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0];
  values.forEach((value, i) => {
    const part = Array.isArray(value)
      ? value.map((v) => (v instanceof Html ? v.text : escapeHtml(v))).join('')
      : value instanceof Html
        ? value.text
        : escapeHtml(value);
    out += part + strings[i + 1];
  });
  return new Html(out);
}

export const SANDBOX_TITLE = 'Amazon Payments (FPS sandbox)';

const STYLE = `
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f3f4f6;color:#111}
header{background:#232f3e;color:#fff;padding:14px 24px;font-weight:600}
header small{color:#f90;margin-left:8px;font-weight:400}
main{max-width:640px;margin:32px auto;background:#fff;border-radius:8px;padding:24px 28px;box-shadow:0 1px 3px #0002}
main.wide{max-width:1200px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:8px 16px}
dt{color:#555}dd{margin:0;font-weight:500;word-break:break-all}
.amount{font-size:1.6em}
.buttons{display:flex;gap:12px;margin-top:24px}
button{font-size:1em;padding:10px 22px;border-radius:6px;border:1px solid #888;cursor:pointer;background:#fff}
button#approve{background:#f90;border-color:#c70;font-weight:600}
.error{color:#b00020}
table{border-collapse:collapse;width:100%;font-size:.85em;margin-bottom:24px}
th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.9em}
`;

export function page(title: string, body: Html, options: { wide?: boolean } = {}): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body><header>Amazon Payments<small>FPS sandbox</small></header>
<main${options.wide ? ' class="wide"' : ''}>${body.text}</main></body></html>`;
}

/** Pages carry no scripts and load nothing from elsewhere. */
export const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

// Opens the dashboard page at the URL given in headless Chromium, waits until the page has
// seen both streams end (or the timeout), and prints one JSON line:
// {"chromium": "<version>", "report": <what the page saw>}.
//   node run.mjs URL [TIMEOUT_MS]
// CHROMIUM names the browser binary (default /usr/bin/chromium).
import { chromium } from "playwright-core";

const [url, timeoutArg] = process.argv.slice(2);
if (!url) {
  console.error("usage: node run.mjs URL [TIMEOUT_MS]");
  process.exit(2);
}
const timeout = Number(timeoutArg ?? 60000);
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // this machine's network is closed: no background or first-run traffic
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  const console_ = [];
  page.on("console", (m) => console_.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => console_.push(`pageerror: ${e.message}`));
  await page.goto(url);
  try {
    await page.waitForFunction(() => window.stowageReport?.done === true, null, { timeout });
  } catch (error) {
    console.error(`the page did not finish within ${timeout} ms: ${error.message}`);
  }
  const report = await page.evaluate(() => window.stowageReport ?? null);
  process.stdout.write(
    JSON.stringify({ chromium: browser.version(), console: console_, report }) + "\n",
  );
} finally {
  await browser.close();
}

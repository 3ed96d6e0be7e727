// Drives Debian's chromium (through playwright-core) against the mdfh web terminal.
//
// Usage: node ladder.mjs URL SYMBOL SCREENSHOT
// Prints "ready" once the page is connected and SYMBOL is selected, then waits for a line on
// standard input (the test writes one when the replay has ended), waits until the ladder stops
// changing, prints the ladder as one JSON line {"asks": [[price, size], ...], "bids": [...]} (best
// first, prices in 1/10000 dollars, and "quality", the feed quality badge's text) and saves a
// screenshot.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const [url, symbol, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (error) => console.error("page error: " + error.message));
  await page.goto(url);
  await page.waitForSelector('#connection[data-state="open"]', { timeout: 20000 });
  await page.waitForSelector(`#symbol option[value="${symbol}"]`, { state: "attached", timeout: 20000 });
  await page.selectOption("#symbol", symbol);
  console.log("ready");

  const lines = createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.once("line", resolve));
  // An open stdin keeps node running; the test has nothing more to say.
  lines.close();
  process.stdin.destroy();

  // The ladder is settled when its feed sequence has not moved for a second.
  let last = null;
  for (let stable = 0; stable < 5; ) {
    await page.waitForTimeout(200);
    const seq = await page.getAttribute("#ladder", "data-feed-seq");
    stable = seq === last ? stable + 1 : 0;
    last = seq;
  }
  const ladder = await page.evaluate(() => {
    const side = (name) =>
      Array.from(document.querySelectorAll(`#ladder tr[data-side="${name}"]`))
        .map((row) => [Number(row.dataset.level), Number(row.dataset.price), Number(row.querySelector(".size").textContent)])
        .sort((a, b) => a[0] - b[0])
        .map(([, price, size]) => [price, size]);
    const quality = document.getElementById("quality");
    return { asks: side("ask"), bids: side("bid"), quality: quality ? quality.textContent : null };
  });
  console.log(JSON.stringify(ladder));
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
process.exit(0);

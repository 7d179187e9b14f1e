// A manager's walk through Gatehouse in a real browser (Debian's Chromium, driven by playwright-core): sign in,
// watch a dashboard tile change when a gateway publishes, open the traffic report and download its CSV, then
// lock a turnstile out from its page (the gateway, subscribed with mosquitto_sub, hears it) and unlock it.
// Run by tests/integration/browser.rs, which starts the server and passes everything through the environment.
import { chromium } from "playwright-core";
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, mkdirSync } from "node:fs";

const base = process.env.GATEHOUSE_URL;
const mqttPort = process.env.GATEHOUSE_MQTT_PORT;
const user = process.env.GATEHOUSE_USER;
const password = process.env.GATEHOUSE_PASSWORD;
const shots = process.env.GATEHOUSE_SCREENSHOTS;
mkdirSync(shots, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
  ],
});
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();

  // Signed out, the dashboard sends us to the sign-in form.
  await page.goto(base + "/");
  check(page.url().includes("/login"), `expected the sign-in form, got ${page.url()}`);
  await page.fill("input[name=name]", user);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForURL(base + "/"), page.click("button[type=submit]")]);
  await page.screenshot({ path: `${shots}/1-dashboard.png`, fullPage: true });

  // A gateway publishes a passage; the tile updates without a reload.
  const tile = page.locator("#device-T1 .passages");
  check((await tile.textContent()).includes("0 in"), `T1 starts with no passages: ${await tile.textContent()}`);
  execFileSync("mosquitto_pub", [
    "-h", "127.0.0.1", "-p", mqttPort, "-q", "1", "-t", "gatehouse/turnstile/T1/passage",
    "-m", JSON.stringify({ msg_id: "browser-1", direction: "in" }),
  ]);
  await page.waitForFunction(
    () => document.querySelector("#device-T1 .passages")?.textContent.includes("1 in"),
    null,
    { timeout: 20000 },
  );
  await page.screenshot({ path: `${shots}/2-dashboard-after-passage.png`, fullPage: true });

  // The traffic report, and its CSV. The tile proves the dashboard's projector has the passage; the report's
  // own projector may be a moment behind it, so wait until its CSV has the row (as a person would reload).
  for (let i = 0; i < 100; i++) {
    const body = await (await page.request.get(base + "/reports/traffic?format=csv")).text();
    if (body.includes(",T1,Hall A,1,0")) break;
    await page.waitForTimeout(200);
  }
  await page.goto(base + "/reports/traffic");
  await page.screenshot({ path: `${shots}/3-traffic-report.png`, fullPage: true });
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("a[href*='format=csv']")]);
  const csv = readFileSync(await download.path(), "utf8");
  const lines = csv.trim().split(/\r?\n/);
  check(lines[0] === "bucket_start,device,zone,in,out", `CSV header: ${lines[0]}`);
  check(lines.some((l) => l.includes(",T1,Hall A,1,0")), `CSV rows: ${csv}`);

  // A gateway listens on T1's command topic; the manager locks T1 out from its page, then unlocks it.
  const gateway = spawn("mosquitto_sub", [
    "-h", "127.0.0.1", "-p", mqttPort, "-q", "1", "-t", "gatehouse/turnstile/T1/command", "-C", "3", "-W", "60",
  ]);
  let heard = "";
  gateway.stdout.on("data", (chunk) => { heard += chunk; });
  const gatewayDone = new Promise((resolve) => gateway.on("close", resolve));
  await page.goto(base + "/devices/T1");
  await page.fill("input[name=reason]", "wet floor, mop in progress");
  await Promise.all([page.waitForURL(/\/devices\/T1\?notice=/), page.click("form.lock-out button[type=submit]")]);
  const lockout = await page.locator("dd.lockout").textContent();
  check(lockout.includes("locked out") && lockout.includes("by user:") && lockout.includes("wet floor"),
    `the page shows the lock-out at once: ${lockout}`);
  await page.screenshot({ path: `${shots}/4-device-locked-out.png`, fullPage: true });
  await page.goto(base + "/");
  check((await page.locator("#device-T1 .status").textContent()).includes("locked out"), "the dashboard shows it");
  await page.goto(base + "/devices/T1");
  await Promise.all([page.waitForURL(/\/devices\/T1\?notice=/), page.click("form.unlock button[type=submit]")]);
  check((await page.locator("p.notice").textContent()).includes("T1 is unlocked"), "the unlock is confirmed");
  const exit = await gatewayDone;
  const commands = heard.trim().split("\n").map((line) => JSON.parse(line));
  check(exit === 0 && commands.map((c) => c.locked).join() === "false,true,false",
    `the gateway heard unlocked, locked, unlocked: ${heard}`);
  check(commands[1].reason === "wet floor, mop in progress", `with the reason: ${heard}`);

  console.log(`walkthrough ok: ${lines.length - 1} CSV rows, lock-out heard by the gateway, screenshots in ${shots}`);
} finally {
  await browser.close();
}

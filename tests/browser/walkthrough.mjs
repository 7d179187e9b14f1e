// A manager's walk through Gatehouse in a real browser (Debian's Chromium, driven by playwright-core): sign in,
// watch a dashboard tile change when a gateway publishes, open the traffic report and download its CSV, then
// lock a turnstile out from its page (the gateway, subscribed with mosquitto_sub, hears it) and unlock it,
// void a test passage from the device's timeline, and take the work order a jam opens through its life; then an
// admin forgets the watched person the alarm names, after confirming, and the alarm reads "forgotten".
// Run by tests/integration/browser.rs, which starts the server and passes everything through the environment.
import { chromium } from "playwright-core";
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, mkdirSync } from "node:fs";

const base = process.env.GATEHOUSE_URL;
const mqttPort = process.env.GATEHOUSE_MQTT_PORT;
const user = process.env.GATEHOUSE_USER;
const password = process.env.GATEHOUSE_PASSWORD;
const admin = process.env.GATEHOUSE_ADMIN;
const adminPassword = process.env.GATEHOUSE_ADMIN_PASSWORD;
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

  // On a 390-px phone the week's chart fits the screen: its last bar is inside the viewport, not cut off.
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(base + "/reports/traffic?bucket=day");
  const bars = phone.locator(".chart svg rect");
  const last = await bars.nth((await bars.count()) - 1).boundingBox();
  const chartBox = await phone.locator(".chart svg").boundingBox();
  check(chartBox.x + chartBox.width <= 390 && last.x + last.width <= 390,
    `the chart fits a phone: svg ends at ${chartBox.x + chartBox.width}, last bar at ${last.x + last.width}`);
  await phone.screenshot({ path: `${shots}/3b-traffic-report-phone.png`, fullPage: true });
  await phone.close();

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

  // The passage of the tile step was a technician's test: void it from the timeline; it stays, struck through.
  await page.goto(base + "/devices/T1");
  const passageRow = page.locator("tr:has(span.type-name:text-is('PassageRecorded'))").first();
  await passageRow.locator("details.void summary").click();
  await passageRow.locator("details.void input[name=reason]").fill("technician's test rotation");
  await Promise.all([
    page.waitForURL(/\/devices\/T1\?notice=/),
    passageRow.locator("details.void button[type=submit]").click(),
  ]);
  check((await page.locator("p.notice").textContent()).includes("is void"), "the void is confirmed");
  const voided = page.locator("tr.voided").first();
  check((await voided.textContent()).includes("void: technician's test rotation (by user:"),
    "the voided passage stays on the timeline, with why and who");
  await page.screenshot({ path: `${shots}/4b-passage-voided.png`, fullPage: true });

  // T2 jams: a work order opens by itself; the manager acknowledges, assigns, starts and resolves it, and the
  // page shows each step at once.
  execFileSync("mosquitto_pub", [
    "-h", "127.0.0.1", "-p", mqttPort, "-q", "1", "-t", "gatehouse/turnstile/T2/fault",
    "-m", JSON.stringify({ msg_id: "browser-jam", code: "JAM", detail: "arm blocked" }),
  ]);
  for (let i = 0; i < 100; i++) {
    const body = await (await page.request.get(base + "/work-orders?format=csv")).text();
    if (body.includes("WO-000001,T2,corrective,open")) break;
    await page.waitForTimeout(200);
  }
  await page.goto(base + "/work-orders");
  check((await page.locator("tr#WO-000001").textContent()).includes("JAM on T2"), "the order is listed");
  await page.screenshot({ path: `${shots}/5-work-orders.png`, fullPage: true });
  await page.click("tr#WO-000001 a[href='/work-orders/WO-000001']");
  const orderState = () => page.locator("#order-state").textContent();
  const submit = async (step) => {
    await Promise.all([
      page.waitForURL(/\/work-orders\/WO-000001\?notice=/),
      page.click(`section.steps form:has(input[name=step][value=${step}]) button[type=submit]`),
    ]);
  };
  await submit("ack");
  check((await orderState()) === "acknowledged", `acknowledged at once: ${await orderState()}`);
  await page.fill("section.steps form:has(input[value=assign]) input[name=text]", "Ana Tech");
  await submit("assign");
  check((await page.locator("#order-assignee").textContent()) === "Ana Tech", "assigned at once");
  await submit("start");
  check((await orderState()) === "in progress", `started at once: ${await orderState()}`);
  await page.fill("section.steps form:has(input[value=resolve]) input[name=text]", "arm bearing replaced");
  await submit("resolve");
  check((await orderState()) === "resolved", `resolved at once: ${await orderState()}`);
  const timeline = await page.locator("table.timeline").textContent();
  check(["opened", "acknowledged", "assigned", "started", "resolved", "arm bearing replaced", "user:mia",
    "policy:maintenance"].every((word) => timeline.includes(word)), `the timeline has every step: ${timeline}`);
  await page.screenshot({ path: `${shots}/6-work-order-resolved.png`, fullPage: true });

  // A watched subject walks past C1: the critical banner appears on the page in front of the manager without a
  // reload; acknowledging the alarm from its page takes the banner away.
  const banner = () => page.locator("#alarm-banner").textContent();
  check((await banner()).trim() === "", `no banner before: ${await banner()}`);
  execFileSync("mosquitto_pub", [
    "-h", "127.0.0.1", "-p", mqttPort, "-q", "1", "-t", "gatehouse/camera/C1/recognition",
    "-m", JSON.stringify({ msg_id: "browser-seen", subject: "P-1042", confidence: 0.97 }),
  ]);
  await page.waitForFunction(
    () => document.querySelector("#alarm-banner")?.textContent.includes("A-000001 critical"),
    null,
    { timeout: 20000 },
  );
  check(page.url().includes("/work-orders/WO-000001"), `still on the same page, not reloaded: ${page.url()}`);
  await page.screenshot({ path: `${shots}/7-alarm-banner.png`, fullPage: true });
  await Promise.all([page.waitForURL(/\/alarms\/A-000001$/), page.click("#alarm-banner a[href='/alarms/A-000001']")]);
  await Promise.all([
    page.waitForURL(/\/alarms\/A-000001\?notice=/),
    page.click("form.steps button[name=step][value=ack]"),
  ]);
  check((await page.locator("p.notice").textContent()).includes("acknowledged"), "the acknowledgement is confirmed");
  check((await banner()).trim() === "", `acknowledged: the banner is gone: ${await banner()}`);
  await page.screenshot({ path: `${shots}/8-alarm-acknowledged.png`, fullPage: true });

  // An admin (a session of their own) forgets the person the alarm names: the identifier is asked for, the page
  // asks again with what cannot be undone, and afterwards the alarm names nobody.
  const adminPage = await (await browser.newContext({ viewport: { width: 1200, height: 900 } })).newPage();
  await adminPage.goto(base + "/login");
  await adminPage.fill("input[name=name]", admin);
  await adminPage.fill("input[name=password]", adminPassword);
  await Promise.all([adminPage.waitForURL(base + "/"), adminPage.click("button[type=submit]")]);
  await adminPage.click("nav a[href='/admin/forget']");
  await adminPage.fill("input[name=subject]", "P-1042");
  await adminPage.click("form[action='/admin/forget'] button[type=submit]");
  await adminPage.waitForSelector("#confirm");
  const confirm = await adminPage.locator("#confirm").textContent();
  check(confirm.includes("Forget P-1042?") && confirm.includes("cannot be undone"), `asked again: ${confirm}`);
  await adminPage.screenshot({ path: `${shots}/9-forget-confirm.png`, fullPage: true });
  await Promise.all([adminPage.waitForURL(/\/admin\/forget\?notice=/), adminPage.click("#confirm button[type=submit]")]);
  check((await adminPage.locator("p.notice").textContent()).includes("the person is forgotten"), "forgetting is confirmed");
  check(!adminPage.url().includes("1042"), `no URL carries the identifier: ${adminPage.url()}`);
  await adminPage.goto(base + "/alarms/A-000001");
  const alarm = await adminPage.locator("main").textContent();
  check(alarm.includes("subject forgotten") && !alarm.includes("P-1042"), `the alarm names nobody: ${alarm}`);
  await adminPage.screenshot({ path: `${shots}/10-alarm-of-a-forgotten-person.png`, fullPage: true });

  console.log(`walkthrough ok: ${lines.length - 1} CSV rows, lock-out heard by the gateway, a work order resolved, an alarm banner acknowledged, a person forgotten, screenshots in ${shots}`);
} finally {
  await browser.close();
}

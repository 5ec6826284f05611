// An agent for the egress tests: one request with Node's global fetch,
// configured by nothing but the environment oz exec gives it.
//   node agent.js URL HEADER VALUE
const [url, header, value] = process.argv.slice(2);
try {
  // Node before 22.21 ignores HTTPS_PROXY in fetch; undici's agent reads it.
  const { EnvHttpProxyAgent, setGlobalDispatcher } = require("undici");
  setGlobalDispatcher(new EnvHttpProxyAgent());
} catch (e) {
  if (e.code !== "MODULE_NOT_FOUND") throw e;
}
fetch(url, { headers: { [header]: value } })
  .then(async (res) => process.stdout.write(`${res.status} ${await res.text()}`))
  .catch((e) => {
    console.error(String(e), e.cause ? String(e.cause) : "");
    process.exit(1);
  });

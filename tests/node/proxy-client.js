// POST a JSON body through HTTPS_PROXY as VS Code extensions do
// (https-proxy-agent; the gateway's CA trusted via NODE_EXTRA_CA_CERTS),
// and print the answer.  Usage: node proxy-client.js URL BODY
const https = require("https");
const { HttpsProxyAgent } = require("https-proxy-agent");

const [url, body] = process.argv.slice(2);
const agent = new HttpsProxyAgent(process.env.HTTPS_PROXY);
const request = https.request(url, {
  method: "POST", agent,
  headers: { "content-type": "application/json",
             "content-length": Buffer.byteLength(body) },
}, (response) => {
  let data = "";
  response.setEncoding("utf8");
  response.on("data", (chunk) => { data += chunk; });
  response.on("end", () => {
    if (response.statusCode !== 200) {
      console.error(`status ${response.statusCode}: ${data}`);
      process.exit(1);
    }
    process.stdout.write(data);
  });
});
request.on("error", (error) => { console.error(error.message); process.exit(1); });
request.end(body);

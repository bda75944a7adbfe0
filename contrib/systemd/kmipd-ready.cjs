#!/usr/bin/env node
// Waits until a local kmipd is ready: its admin listener answers GET /readyz with 200 (keystore,
// master key, server certificate and schema all fine). Exit 0 when ready, 1 when not ready by
// the deadline (the last answer goes to standard error).
//
// kmipd cannot send sd_notify(3) (Node.js has no Unix datagram sockets), so the systemd unit
// runs this as ExecStartPost=: `systemctl start kmipd` returns, and units ordered After=kmipd
// start, only once kmipd serves. The container image uses it as its HEALTHCHECK (--timeout 5).
// No dependencies beyond Node.js; CommonJS so that it runs from anywhere it is installed.
//
//   kmipd-ready [--url https://127.0.0.1:5697/readyz] [--ca /var/lib/kmipd/pki/ca.crt]
//               [--timeout SECONDS (100)] [--interval MS (250)]
//
// The admin listener must be on (`kmipd serve --admin-port 5697`). On loopback it needs no
// client certificate; the CA file is the data directory's pki/ca.crt (it appears on first start).
'use strict';
const fs = require('node:fs');
const https = require('node:https');

function parse(argv) {
  const o = { url: 'https://127.0.0.1:5697/readyz', ca: '/var/lib/kmipd/pki/ca.crt', timeout: 100, interval: 250 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--help' || a === '-h') {
      process.stdout.write('usage: kmipd-ready [--url URL] [--ca FILE] [--timeout SECONDS] [--interval MS]\n');
      process.exit(0);
    }
    if (!['--url', '--ca', '--timeout', '--interval'].includes(a) || v === undefined) {
      process.stderr.write(`kmipd-ready: unknown or incomplete option ${a}\n`);
      process.exit(2);
    }
    i++;
    if (a === '--url') o.url = v;
    else if (a === '--ca') o.ca = v;
    else {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) {
        process.stderr.write(`kmipd-ready: ${a} must be a positive number\n`);
        process.exit(2);
      }
      o[a.slice(2)] = n;
    }
  }
  return o;
}

/** One probe: 'ready', or why not. */
function probe(o) {
  return new Promise((resolve) => {
    let ca;
    try {
      ca = fs.readFileSync(o.ca);
    } catch (e) {
      resolve(`the CA certificate ${o.ca} cannot be read yet (${e.code || e.message})`);
      return;
    }
    const req = https.get(o.url, { ca, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        if (body.length < 2000) body += c;
      });
      res.on('end', () => resolve(res.statusCode === 200 ? 'ready' : `${o.url} answered ${res.statusCode}: ${body.trim().slice(0, 500)}`));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', (e) => resolve(`${o.url}: ${e.code || e.message}`));
  });
}

async function main() {
  const o = parse(process.argv.slice(2));
  const deadline = Date.now() + o.timeout * 1000;
  let last = '';
  for (;;) {
    last = await probe(o);
    if (last === 'ready') return 0;
    if (Date.now() + o.interval > deadline) break;
    await new Promise((r) => setTimeout(r, o.interval));
  }
  process.stderr.write(`kmipd-ready: kmipd not ready after ${o.timeout} s: ${last}\n`);
  return 1;
}

main().then((code) => process.exit(code));

// A minimal Kyclo webhook receiver that verifies every request with the `standardwebhooks` library.
//   KYCLO_WEBHOOK_SECRET=whsec_… node examples/webhook-receiver.mjs   (listens on PORT, default 4000)
import http from 'node:http';
import { Webhook } from 'standardwebhooks';

const webhook = new Webhook(process.env.KYCLO_WEBHOOK_SECRET);
const seen = new Set(); // webhook-id is stable across retries: use it to drop duplicates

http
  .createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      let event;
      try {
        event = webhook.verify(body, req.headers); // checks the signature and the timestamp (±5 min)
      } catch (err) {
        console.error(`rejected: ${err.message}`);
        res.writeHead(400).end();
        return;
      }
      const id = req.headers['webhook-id'];
      if (!seen.has(id)) {
        seen.add(id);
        console.log(`verified ${id} ${event.type} ${JSON.stringify(event.data)}`);
      }
      res.writeHead(204).end(); // any 2xx: delivered; anything else is retried
    });
  })
  .listen(Number(process.env.PORT ?? 4000), '127.0.0.1', () => console.log('listening'));

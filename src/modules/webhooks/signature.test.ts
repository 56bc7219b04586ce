import { describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { newSecret } from './webhooks.service.js';
import { signWebhook } from './signature.js';

describe('signWebhook', () => {
  it('signs exactly as the standardwebhooks library does, and its verifier accepts the result', () => {
    for (let i = 0; i < 50; i++) {
      const secret = newSecret();
      const at = new Date(1_700_000_000_000 + i * 997_123);
      const body = JSON.stringify({ id: `evt_${i}`, data: { name: 'Zoë 😀 "quoted"', n: i } });
      const ours = signWebhook(secret, `evt_${i}`, at, body);
      expect(ours).toBe(new Webhook(secret).sign(`evt_${i}`, at, body));
    }
    const secret = newSecret();
    const now = new Date();
    const body = '{"id":"evt_1","type":"user.updated"}';
    const headers = { 'webhook-id': 'evt_1', 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': signWebhook(secret, 'evt_1', now, body) };
    expect(new Webhook(secret).verify(body, headers)).toEqual({ id: 'evt_1', type: 'user.updated' });
    expect(() => new Webhook(newSecret()).verify(body, headers)).toThrow();
  });
});

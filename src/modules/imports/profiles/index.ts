// The profiles an import can read, by name.
import type { ImportProfile } from './profile.js';
import { kycloProfile } from './kyclo.js';
import { treezorProfile } from './treezor.js';
import { sendProfile } from './send.js';
import { matchmoveProfile } from './matchmove.js';
import { diditProfile } from './didit.js';

export const PROFILES: Record<string, ImportProfile> = {
  kyclo: kycloProfile,
  treezor: treezorProfile,
  send: sendProfile,
  matchmove: matchmoveProfile,
  didit: diditProfile,
};

export const PROFILE_NAMES = Object.keys(PROFILES);

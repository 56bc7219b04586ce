// The profiles an import can read, by name.
import type { ImportProfile } from './profile.js';
import { kycloProfile } from './kyclo.js';

export const PROFILES: Record<string, ImportProfile> = {
  kyclo: kycloProfile,
};

export const PROFILE_NAMES = Object.keys(PROFILES);

import { bitbucketDelivery } from "./bitbucket/webhook.ts";
import type { DeliveryParser } from "./events.ts";
import { giteaDelivery } from "./gitea/webhook.ts";
import { githubDelivery } from "./github/webhook.ts";
import { gitlabDelivery } from "./gitlab/webhook.ts";
import type { ForgeKind } from "./port.ts";

/** Each forge's webhook parser: it checks the signature or token, then reads the event. */
export const DELIVERY_PARSERS: Readonly<Record<ForgeKind, DeliveryParser>> = {
  github: githubDelivery,
  gitlab: gitlabDelivery,
  gitea: giteaDelivery,
  bitbucket: bitbucketDelivery,
};

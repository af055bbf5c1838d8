// The household's time zone, for every time the board shows or lets a member pick: set
// by the Board from the household (GET /households/{id}), the same for every member
// wherever they are.
import { createContext, useContext } from "react";

/** A household that never named one is in UTC (the server's `DEFAULT_TIME_ZONE`). */
export const DEFAULT_TIME_ZONE = "UTC";

export const HouseholdZone = createContext<string>(DEFAULT_TIME_ZONE);

/** The time zone of the household on screen. */
export const useZone = (): string => useContext(HouseholdZone);

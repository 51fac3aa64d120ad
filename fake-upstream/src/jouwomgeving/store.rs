//! JouwOmgeving's "Application" users; the JWTs themselves are stateless.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Clone, Debug)]
pub(crate) struct User {
    pub id: u64,
    pub username: String,
    pub password: String,
    pub email: String,
    pub active: bool,
}

#[derive(Default)]
pub(crate) struct Store(Mutex<HashMap<String, User>>);

impl Store {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, User>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds (or replaces, keeping the id) a user; ids count from 1 like Django's.
    pub fn add_user(&self, username: &str, password: &str) {
        let mut users = self.lock();
        let id = users.get(username).map_or(users.len() as u64 + 1, |u| u.id);
        let user = User {
            id,
            username: username.to_owned(),
            password: password.to_owned(),
            email: format!("{username}@example.invalid"),
            active: true,
        };
        users.insert(username.to_owned(), user);
    }

    pub fn set_active(&self, username: &str, active: bool) {
        if let Some(user) = self.lock().get_mut(username) {
            user.active = active;
        }
    }

    /// Django's `authenticate`: the ModelBackend refuses inactive users like wrong passwords.
    pub fn authenticate(&self, username: &str, password: &str) -> Option<User> {
        let users = self.lock();
        users.get(username).filter(|u| u.active && u.password == password).cloned()
    }

    pub fn user(&self, username: &str) -> Option<User> {
        self.lock().get(username).cloned()
    }

    pub fn all(&self) -> Vec<User> {
        let mut users: Vec<User> = self.lock().values().cloned().collect();
        users.sort_by_key(|u| u.id);
        users
    }
}
